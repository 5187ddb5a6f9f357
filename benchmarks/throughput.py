"""Windows/second for training steps and for inference, per torch model, on this machine."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from genre_core.features.pipeline import input_pipeline
from genre_core.features.spectral import FeatureConfig
from genre_core.models import MODELS, build_model
from genre_core.train.loop import resolve_device

BATCH = 32
WINDOW_S = 3.0


def _time(fn, repeats: int) -> float:
    fn()  # warm-up: allocator, cuDNN autotune, lazy init
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return (time.perf_counter() - started) / repeats


def measure(name: str, device: torch.device, repeats: int = 3) -> dict:
    spec = MODELS[name]
    frontend, sr, bins = input_pipeline(spec.input_kind, FeatureConfig())
    model = build_model(name, 10, bins).to(device)
    frontend = frontend.to(device)
    audio = torch.from_numpy(np.random.default_rng(0).standard_normal((BATCH, int(WINDOW_S * sr)), dtype=np.float32) * 0.1).to(device)
    labels = torch.randint(0, 10, (BATCH,), device=device)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4) if params else None
    autocast = dict(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    def train_step():
        model.train()
        with torch.autocast(**autocast):
            loss = F.cross_entropy(model(frontend(audio)).logits.float(), labels)
        if optimizer:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def infer():
        model.eval()
        with torch.autocast(**autocast):
            model(frontend(audio))

    train_s, infer_s = _time(train_step, repeats), _time(infer, repeats)
    return dict(model=name, device=str(device), train_windows_per_s=BATCH / train_s,
                infer_windows_per_s=BATCH / infer_s, ms_per_window=1000 * infer_s / BATCH)


def run(store, args) -> pd.DataFrame:
    device = resolve_device(args.device)
    rows = [measure(name, device) for name, spec in MODELS.items() if spec.is_torch]
    table = pd.DataFrame(rows)
    print(table.to_markdown(index=False, floatfmt=".1f"))
    return table
