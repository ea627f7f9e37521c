"""GRPO rewards for the enhancer, each a plain function returning one float (or None: does not apply) per
answer: the answer's text (constraints.py), and the image the frozen generator draws from it (text.py
OCR, colour.py, judge.py an MLLM judge, aesthetic.py)."""
