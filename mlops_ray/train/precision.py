"""Mixed precision: which autocast dtype to use on this device, and a grad scaler when fp16 needs one.

``auto`` means bf16 on a GPU that supports it (no scaler needed: bf16 has fp32's
range), else fp16 with a ``GradScaler`` that skips steps whose gradients overflowed;
on CPU, ``auto`` keeps fp32, because CPU autocast is only faster on hardware with
bf16 instructions. ``bf16`` on CPU is allowed and runs CPU autocast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch


@dataclass
class Precision:
    device_type: str
    dtype: torch.dtype | None  # None: plain fp32
    scaler: torch.amp.GradScaler

    @classmethod
    def choose(cls, setting: str, device: torch.device) -> Precision:
        dtype: torch.dtype | None = None
        if device.type == "cuda":
            if setting in ("auto", "bf16") and torch.cuda.is_bf16_supported():
                dtype = torch.bfloat16
            elif setting != "fp32":
                dtype = torch.float16
        elif setting == "bf16":
            dtype = torch.bfloat16
        scaler = torch.amp.GradScaler(device.type, enabled=dtype is torch.float16)
        return cls(device.type, dtype, scaler)

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield
