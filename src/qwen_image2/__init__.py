"""qwen-image2: an open implementation of the Qwen-Image-2.0 system."""
