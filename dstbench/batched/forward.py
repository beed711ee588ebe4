"""Forward passes of K same-architecture models at once, over parameters stacked per run.

A stacked forward takes ``params`` (parameter name -> tensor of shape ``(K, *shape)``) and
inputs ``x`` of shape ``(K, B, *input)`` (run k's batch in ``x[k]``) and returns logits
``(K, B, classes)``. Runs never mix: run k's output depends only on ``params[...][k]`` and
``x[k]``, so the gradient of the sum of the runs' losses is each run's own gradient.

Kernels, chosen by measurement on CPU (see ``benchmarks/batched.py --kernels``):

* Linear: one ``baddbmm`` forward and ``bmm`` backward with a hand-written backward, so that
  the weight gradient comes out in the weight's own ``(K, out, in)`` layout (autograd's
  generic backward of ``x @ W.transpose`` produces it transposed and then copies it), and the
  input gradient of the first layer is never computed. ``torch.func.vmap`` over
  ``functional_call`` was 1.5x slower on the quick suite's MLP and 2x on MLP-CIFAR.
* Conv2d: one grouped convolution (``groups = K``) on activations laid out ``(B, K*C, H, W)``;
  element-wise ops and pooling act on that layout unchanged.

Only models whose structure is known can be stacked: the MLPs (``nn.Sequential`` of
Flatten/Linear/ReLU), the small ConvNet and LeNet-5. :func:`stacked_forward` says why another
model cannot, and the engine then trains it with the single engine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch
from torch import nn
from torch.nn import functional as F

from dstbench.models.convnets import LeNet5, SmallConvNet

#: ``forward(params, x) -> logits``: see the module docstring for the shapes.
StackedForward = Callable[[dict[str, torch.Tensor], torch.Tensor], torch.Tensor]


class Unbatchable(Exception):
    """The model cannot be stacked; the message says why (one line)."""


class _StackedLinear(torch.autograd.Function):
    """``y[k] = x[k] @ W[k]^T + b[k]`` for every run k, with a layout-preserving backward."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        if bias is None:
            return torch.bmm(x, weight.transpose(1, 2))
        return torch.baddbmm(bias.unsqueeze(1), x, weight.transpose(1, 2))

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        grad_x = torch.bmm(grad, weight) if ctx.needs_input_grad[0] else None
        grad_w = torch.bmm(grad.transpose(1, 2), x)
        grad_b = grad.sum(1) if ctx.has_bias else None
        return grad_x, grad_w, grad_b


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Stacked ``nn.Linear``: ``x`` (K, B, in), ``weight`` (K, out, in), ``bias`` (K, out)."""
    return cast(torch.Tensor, _StackedLinear.apply(x, weight, bias))


def to_grouped(x: torch.Tensor) -> torch.Tensor:
    """(K, B, C, H, W) -> (B, K*C, H, W): the runs side by side along the channels."""
    k, b, c = x.shape[:3]
    return x.transpose(0, 1).reshape(b, k * c, *x.shape[3:])


def from_grouped(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, K*C, H, W) -> (K, B, C*H*W): back to one flattened row per sample and run."""
    return x.reshape(x.shape[0], k, -1).transpose(0, 1)


def conv2d(
    x: torch.Tensor, conv: nn.Conv2d, weight: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """Stacked ``conv`` on grouped activations ``x`` (B, K*C, H, W); ``weight`` (K, O, C, h, w)."""
    k = weight.shape[0]
    return F.conv2d(
        x,
        weight.reshape(k * weight.shape[1], *weight.shape[2:]),
        None if bias is None else bias.reshape(-1),
        conv.stride,
        conv.padding,
        conv.dilation,
        groups=k,
    )


def _check_conv(name: str, conv: nn.Conv2d) -> None:
    if conv.groups != 1 or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
        raise Unbatchable(f"conv {name!r} uses groups, a padding mode or string padding")


def _sequential_mlp(model: nn.Sequential) -> StackedForward:
    steps: list[tuple[str, str]] = []
    for name, module in model.named_children():
        if isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise Unbatchable(f"Flatten {name!r} does not flatten all but the batch dim")
            steps.append(("flatten", name))
        elif type(module) is nn.Linear:
            steps.append(("linear", name))
        elif type(module) is nn.ReLU:
            steps.append(("relu", name))
        else:
            kind = type(module).__name__
            raise Unbatchable(f"layer {name!r} is a {kind}; only Flatten, Linear and ReLU stack")

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        h = x
        for kind, name in steps:
            if kind == "flatten":
                h = h.flatten(2)
            elif kind == "linear":
                h = linear(h, params[f"{name}.weight"], params.get(f"{name}.bias"))
            else:
                h = torch.relu(h)
        return h

    return forward


def _small_conv(model: SmallConvNet) -> StackedForward:
    for name in ("conv1", "conv2", "conv3"):
        _check_conv(name, getattr(model, name))

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        k = x.shape[0]

        def conv(h: torch.Tensor, name: str) -> torch.Tensor:
            layer = getattr(model, name)
            return conv2d(h, layer, params[f"{name}.weight"], params.get(f"{name}.bias"))

        h = F.max_pool2d(F.relu(conv(to_grouped(x), "conv1")), 2)
        h = F.max_pool2d(F.relu(conv(h, "conv2")), 2)
        h = F.adaptive_avg_pool2d(F.relu(conv(h, "conv3")), 1)
        return linear(from_grouped(h, k), params["fc.weight"], params.get("fc.bias"))

    return forward


def _lenet5(model: LeNet5) -> StackedForward:
    for name in ("conv1", "conv2"):
        _check_conv(name, getattr(model, name))

    def forward(params: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        k = x.shape[0]

        def conv(h: torch.Tensor, name: str) -> torch.Tensor:
            layer = getattr(model, name)
            return conv2d(h, layer, params[f"{name}.weight"], params.get(f"{name}.bias"))

        h = F.max_pool2d(F.relu(conv(to_grouped(x), "conv1")), 2)
        h = F.max_pool2d(F.relu(conv(h, "conv2")), 2)
        h = F.relu(linear(from_grouped(h, k), params["fc3.weight"], params.get("fc3.bias")))
        return linear(h, params["fc4.weight"], params.get("fc4.bias"))

    return forward


def stacked_forward(model: nn.Module) -> StackedForward:
    """The stacked forward of ``model``'s architecture (``model`` is one of the K runs).

    :raises Unbatchable: for an architecture this module does not know, or one with buffers
        (e.g. BatchNorm running statistics) or parameters that are not stacked per layer.
    """
    if any(True for _ in model.buffers()):
        raise Unbatchable(f"{type(model).__name__} has buffers (e.g. BatchNorm statistics)")
    # Exact types only: a subclass may override forward.
    if type(model) is SmallConvNet:
        return _small_conv(model)
    if type(model) is LeNet5:
        return _lenet5(model)
    if isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward:
        return _sequential_mlp(model)
    raise Unbatchable(f"no stacked forward for {type(model).__name__} (custom forward)")
