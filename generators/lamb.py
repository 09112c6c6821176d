"""LAMB (You et al., arXiv 1904.00962), the optimizer Snap Video trains FIT with.

Per parameter tensor: Adam moments (optionally bias-corrected), raw step r = m / (sqrt(v) + eps), L2
weight decay folded in (u = r + wd * w), then a layer-wise trust ratio ||w|| / ||u|| scales the step.
Defaults follow ``timm.optim.Lamb`` (NvLAMB / apex FusedLAMB semantics): bias correction on, no trust
ratio for parameters without weight decay unless ``always_adapt``, ``trust_clip`` caps the ratio at 1.
``weight_norm_clamp`` bounds ||w|| as torch_optimizer / pytorch-lamb do (they use 10); ``adam=True``
forces the ratio to 1 (Adam with L2 decay, for comparisons). ``max_grad_norm`` divides all gradients by
max(1, ||g|| / max_grad_norm) over every group before the moments, as timm does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer


class Lamb(Optimizer):
    """Layer-wise adaptive moments optimizer; state per parameter: ``step``, ``exp_avg``, ``exp_avg_sq``."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.01,
        *,
        bias_correction: bool = True,
        grad_averaging: bool = True,
        max_grad_norm: float | None = None,
        trust_clip: bool = False,
        always_adapt: bool = False,
        weight_norm_clamp: float | None = None,
        adam: bool = False,
    ):
        if lr < 0:
            raise ValueError(f"Lamb: expected lr >= 0, got {lr}")
        if eps < 0:
            raise ValueError(f"Lamb: expected eps >= 0, got {eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"Lamb: expected betas in [0, 1), got {tuple(betas)}")
        if weight_decay < 0:
            raise ValueError(f"Lamb: expected weight_decay >= 0, got {weight_decay}")
        if max_grad_norm is not None and max_grad_norm <= 0:
            raise ValueError(f"Lamb: expected max_grad_norm > 0 or None, got {max_grad_norm}")
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, bias_correction=bias_correction,
                        grad_averaging=grad_averaging, trust_clip=trust_clip, always_adapt=always_adapt,
                        weight_norm_clamp=weight_norm_clamp, adam=adam)
        super().__init__(params, defaults)
        self.max_grad_norm = max_grad_norm

    def _grad_scale(self) -> torch.Tensor | None:
        """max(1, ||g||_global / max_grad_norm), or None when global clipping is off."""
        if self.max_grad_norm is None:
            return None
        norms = [p.grad.detach().norm(2) for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not norms:
            return None
        total = torch.linalg.vector_norm(torch.stack([n.to(norms[0].device) for n in norms]))
        return (total / self.max_grad_norm).clamp(min=1.0)

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        scale = self._grad_scale()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps, wd = group["lr"], group["eps"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.is_sparse:
                    raise RuntimeError("Lamb does not support sparse gradients")
                grad = p.grad if scale is None else p.grad / scale.to(p.grad.device)
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"] += 1
                t = float(state["step"])
                m, v = state["exp_avg"], state["exp_avg_sq"]
                if group["grad_averaging"]:
                    m.lerp_(grad, 1 - beta1)
                else:
                    m.mul_(beta1).add_(grad)
                v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                if group["bias_correction"]:
                    bc1, bc2 = 1 - beta1**t, 1 - beta2**t
                else:
                    bc1, bc2 = 1.0, 1.0
                update = (m / bc1).div_((v.sqrt() / bc2**0.5).add_(eps))
                if wd != 0:
                    update.add_(p, alpha=wd)
                if not group["adam"] and (wd != 0 or group["always_adapt"]):
                    update.mul_(trust_ratio(p, update, group["trust_clip"], group["weight_norm_clamp"]))
                p.add_(update, alpha=-lr)
        return loss


def zero_under_trust_ratio(optimizer: Lamb, model: torch.nn.Module) -> list[str]:
    """Names of ``model``'s parameters that are exactly zero and get a trust ratio: LAMB will barely move them.

    The trust ratio is 1 while a tensor's norm is zero, so the first step moves it by lr; from then on
    each step moves it by about lr times its own norm, so it grows by at most (1 + lr) per step and stays
    near zero for a whole run. Zero-initialised output layers (ADM-style U-Nets, adapters) need Adam or
    a zero start in a vector (no weight decay, hence no trust ratio).
    """
    adapted = {id(p) for group in optimizer.param_groups
               if not group["adam"] and (group["weight_decay"] != 0 or group["always_adapt"])
               for p in group["params"]}
    return [name for name, p in model.named_parameters() if id(p) in adapted and p.numel() and not p.detach().any()]


def trust_ratio(weight: torch.Tensor, update: torch.Tensor, clip: bool = False,
                weight_norm_clamp: float | None = None) -> torch.Tensor:
    """phi(||w||) / ||u||, or 1 when either norm is zero; capped at 1 when ``clip``."""
    w_norm = weight.norm(2)
    if weight_norm_clamp is not None:
        w_norm = w_norm.clamp(0.0, weight_norm_clamp)
    u_norm = update.norm(2)
    one = torch.ones((), dtype=w_norm.dtype, device=w_norm.device)
    ratio = torch.where((w_norm > 0) & (u_norm > 0), w_norm / torch.where(u_norm > 0, u_norm, one), one)
    if clip:
        ratio = ratio.clamp(max=1.0)
    return ratio


def no_decay_names(model: torch.nn.Module) -> set[str]:
    """Names of the parameters that submodules list in ``no_weight_decay()`` (the timm convention), prefixed.

    Learned positional and latent embeddings are listed there: they are rank-2 tensors, and decaying them
    and scaling their step by a trust ratio ties their growth to their own small initial norm (LAMB moves a
    tensor by lr x ||w|| per step); timm's optimizers leave such embeddings out of weight decay.
    """
    names: set[str] = set()
    for prefix, module in model.named_modules():
        listed = getattr(module, "no_weight_decay", None)
        if callable(listed):
            names.update(f"{prefix}.{n}" if prefix else n for n in listed())
    return names


def param_groups_no_decay(model: torch.nn.Module, weight_decay: float, *,
                          honour_no_weight_decay: bool = False) -> list[dict[str, Any]]:
    """Two groups: weights of rank >= 2 decay; biases, norms and gains (rank < 2) do not, and with
    ``honour_no_weight_decay`` neither do the parameters a submodule lists in ``no_weight_decay()``.

    The same split as ``timm.optim.param_groups_weight_decay(model, wd, no_weight_decay_list)``. In ``Lamb``
    a group without weight decay also gets no trust ratio, i.e. a plain Adam step.
    """
    listed = no_decay_names(model) if honour_no_weight_decay else set()
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith(".bias") or name in listed else decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups
