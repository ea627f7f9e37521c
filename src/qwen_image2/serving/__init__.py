"""`qwen-image2 serve`: an OpenAI-compatible image API, a web page, and the engine that batches requests."""
