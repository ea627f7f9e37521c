"""Pure metrics: image fidelity, OCR reading and scoring, pixel alignment."""
