"""musicnn's front end at inference: each branch pooled over frequency before its activation.

A front-end branch is conv -> ReLU -> batch norm -> max over all frequencies, and the conv's
(B, C, F', T) output is by far the largest tensor in the network. In eval mode the batch norm
is a per-channel affine a * h + b, and a * relu(z) + b is monotone in z: non-decreasing where
a >= 0, non-increasing where a < 0. So the max over frequencies of the activated map is the
activation of max_f z (a >= 0) or of min_f z (a < 0), and min_f z = -max_f(-z): with those
channels' filters negated, one max over the raw conv output serves every channel. Rounding
is monotone too, so this is the same arithmetic on fewer values, not an approximation.

Each window's convolution is one matrix product over its unfolded patches (im2col), which
keeps the patch matrix (~12 MB) in cache and runs at this CPU's matmul speed; the three
temporal branches read slices of one shared patch matrix. Measured on the 2-core dev box,
batch of 16 windows: the whole tagger 72 -> 31-33 ms per 3-s window on one thread (front end:
timbral 29 + 17 -> 11 + 10, temporal 29 -> 8.5), 16.7 ms on two; equal to the layer-by-layer
path within 3e-5 (values up to ~60).

Only for inference: under autograd or with hooks on a branch (Grad-CAM reads the rectified
map) the tagger runs its layers one by one.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class _PoolFirst:
    """One branch's conv as a (C, K) matrix, each channel's filter negated where its batch
    norm scale is negative, and the branch's ReLU + batch norm applied after the max."""

    def __init__(self, branch: nn.Module):
        bn = branch.bn
        self.scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)  # (C,)
        self.shift = bn.bias - bn.running_mean * self.scale  # (C,)
        self.sign = torch.where(self.scale < 0, -1.0, 1.0).to(self.scale.dtype)  # (C,)
        self.weight = branch.conv.weight.flatten(1) * self.sign[:, None]  # (C, kf * kt)
        self.bias = branch.conv.bias * self.sign  # (C,)

    def finish(self, signed_max: torch.Tensor) -> torch.Tensor:
        """(B, C, T) max over frequencies of the signed conv without bias -> the branch's
        output (B, C, T)."""
        column = lambda v: v[:, None]  # (C,) -> (C, 1): per channel, broadcast over frames
        z = (signed_max + column(self.bias)) * column(self.sign)  # max_f z; min_f z where scale < 0
        return torch.addcmul(column(self.shift), column(self.scale), z.clamp_min(0))


def timbral_branch(branch: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """A (kf bands x kt frames) branch, valid in frequency: x (B, 1, F, T) -> (B, C, T)."""
    plan = _PoolFirst(branch)
    kf, kt = branch.conv.kernel_size
    padded = F.pad(x[:, 0], branch.time_pad)  # (B, F, T + kt - 1)
    maxima = []
    for window in padded:  # (F, T + kt - 1)
        # Patch rows ordered (band offset, frame offset), columns (band, frame): each row is
        # a contiguous run of frames to copy, twice as quick as (band, frame)-major patches.
        patches = window.unfold(0, kf, 1).unfold(1, kt, 1).permute(2, 3, 0, 1)  # (kf, kt, F', T)
        bands, frames = patches.shape[2:]
        # (F' * T, C) rows, so the max over bands runs along whole contiguous rows (quicker
        # than reducing the middle axis of (C, F', T); the matmul reads the patches transposed).
        z = patches.reshape(kf * kt, bands * frames).t() @ plan.weight.t()  # (F' * T, C)
        maxima.append(z.view(bands, frames, -1).amax(0).t())  # (C, T)
    return plan.finish(torch.stack(maxima))


def temporal_branches(branches: Sequence[nn.Module], x: torch.Tensor) -> list[torch.Tensor]:
    """Branches of (1 band x k frames) filters, "same" in time: x (B, 1, F, T) -> one
    (B, C_i, T) per branch. Their windows nest inside the widest one's, so one patch matrix
    of the widest serves all: branch i reads rows offset_i .. offset_i + k_i."""
    widest = max(branches, key=lambda b: b.conv.kernel_size[1])
    width, left = widest.conv.kernel_size[1], widest.time_pad[0]
    plans = [(left - b.time_pad[0], b.conv.kernel_size[1], _PoolFirst(b)) for b in branches]
    padded = F.pad(x[:, 0], widest.time_pad)  # (B, F, T + width - 1)
    maxima: list[list[torch.Tensor]] = [[] for _ in branches]
    for window in padded:  # (F, T + width - 1)
        patches = window.unfold(1, width, 1).permute(2, 0, 1)  # (width, F, T)
        bands, frames = patches.shape[1:]
        patches = patches.reshape(width, bands * frames)
        for out, (offset, k, plan) in zip(maxima, plans):
            z = plan.weight @ patches[offset:offset + k]  # (C, F * T)
            out.append(z.view(-1, bands, frames).amax(1))  # (C, T)
    return [plan.finish(torch.stack(out)) for out, (_, _, plan) in zip(maxima, plans)]


def layer_by_layer_needed(branches: Sequence[nn.Module]) -> bool:
    """True where the pooled-first shortcut would change what a caller sees: training (batch
    statistics), autograd (gradients flow through the activations), or hooks on a layer."""
    if torch.is_grad_enabled() or any(b.training for b in branches):
        return True
    return any(m._forward_hooks or m._forward_pre_hooks for b in branches for m in b.modules())
