"""Where a model runs and in what precision, from what a user asked for ('auto' picks for the machine)."""

import torch

from qwen_image2.errors import UserError

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(device: str) -> str:
    """'auto' -> cuda when available, else cpu; a named device must exist on this machine."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"--device {device!r}: not a device (cpu, cuda, cuda:1, ... or auto)") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {device}: this machine has no CUDA GPU (use cpu or auto)")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UserError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    elif parsed.type not in ("cpu", "mps", "xpu"):
        raise UserError(f"--device {device!r}: choose cpu, cuda, cuda:N or auto")
    return device


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """'auto' -> float32 on the CPU, bfloat16 on an accelerator; else one of DTYPES by name."""
    if dtype == "auto":
        return torch.float32 if device == "cpu" else torch.bfloat16
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r}: choose one of {', '.join(DTYPES)} or auto")
    return DTYPES[dtype]
