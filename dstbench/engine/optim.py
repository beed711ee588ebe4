"""SGD with the sparsity mask fused into its update.

The arithmetic is ``torch.optim.SGD``'s multi-tensor (foreach) path, step for step, so a dense
run is bit-identical to ``torch.optim.SGD(..., foreach=True)``. The one change: for masked
weights the final ``p -= lr · d`` is ``p += (-lr) · d · m`` (one ``addcmul``), which keeps
inactive weights exactly zero without a separate masking pass over the weights after every
step. Gradients and momentum buffers stay dense, as in the paper's code.

The masks are in the weight's dtype, not bool, although a bool mask is a quarter of the bytes:
on a CPU, torch casts an operand of another dtype through a full temporary before the kernel
runs, so ``addcmul_`` with a bool (or uint8) mask costs two to three times what it costs with a
float one. The float mask's extra read is all the masked step costs over the plain one: 4 bytes
per weight next to the ~56 that the step's five passes (weight decay, momentum scale and add,
Nesterov, update) move anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

TensorSeq = list[torch.Tensor] | tuple[torch.Tensor, ...]


class MaskedSGD(torch.optim.Optimizer):
    """SGD with momentum, Nesterov and weight decay; masks applied inside the step.

    :param params: parameters (or parameter groups) to optimize.
    :param lr: learning rate.
    :param momentum: momentum factor μ.
    :param weight_decay: L2 penalty added to the gradient (on every parameter, as in the paper).
    :param nesterov: use Nesterov momentum.
    :param dampening: dampening for momentum.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter] | Iterable[dict[str, object]],
        lr: float,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        dampening: float = 0.0,
    ) -> None:
        if nesterov and (momentum <= 0 or dampening != 0):
            msg = "Nesterov momentum requires a momentum and zero dampening"
            raise ValueError(msg)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "dampening": dampening,
        }
        super().__init__(params, defaults)
        self._masks: dict[torch.Tensor, torch.Tensor] = {}
        self._splits: list[
            tuple[list[int], list[int], list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]
        ] = []

    def set_masks(self, masks: Mapping[torch.Tensor, torch.Tensor]) -> None:
        """Register masks (in each weight's dtype) for the masked parameters.

        The mask tensors are read at every step, so updating them in place (as the Masker does)
        takes effect without calling this again.
        """
        self._masks = dict(masks)
        # Split every group once into masked / plain positions, so that the per-step work is a
        # few list comprehensions and three foreach kernels whatever the model.
        self._splits = []
        for group in self.param_groups:
            members = group["params"]
            masked = [i for i, p in enumerate(members) if p in self._masks]
            plain = [i for i, p in enumerate(members) if p not in self._masks]
            self._splits.append(
                (
                    masked,
                    plain,
                    [members[i] for i in masked],
                    [self._masks[members[i]] for i in masked],
                    [members[i] for i in plain],
                )
            )

    def momentum_buffer(self, param: torch.Tensor) -> torch.Tensor | None:
        """The momentum buffer of ``param``, or None before the first step."""
        state = self.state.get(param)
        return state.get("momentum_buffer") if state else None

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """Perform one optimization step."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for index, group in enumerate(self.param_groups):
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                self._group_step(index, group, params)
        return loss

    def _group_step(self, index: int, group: dict[str, object], params: list[torch.Tensor]) -> None:
        lr = float(group["lr"])  # type: ignore[arg-type]
        momentum = float(group["momentum"])  # type: ignore[arg-type]
        weight_decay = float(group["weight_decay"])  # type: ignore[arg-type]
        dampening = float(group["dampening"])  # type: ignore[arg-type]
        # torch's foreach ops return tuples; both tuples and lists are accepted everywhere.
        grads: TensorSeq = [p.grad for p in params]  # type: ignore[misc]
        if weight_decay != 0:
            grads = torch._foreach_add(grads, params, alpha=weight_decay)
        if momentum != 0:
            states = [self.state[p] for p in params]
            if all("momentum_buffer" in s for s in states):
                bufs = [s["momentum_buffer"] for s in states]
                torch._foreach_mul_(bufs, momentum)
                torch._foreach_add_(bufs, grads, alpha=1 - dampening)
            else:
                bufs = []
                for state, grad in zip(states, grads, strict=True):
                    if "momentum_buffer" not in state:
                        state["momentum_buffer"] = torch.clone(grad).detach()
                    else:
                        state["momentum_buffer"].mul_(momentum).add_(grad, alpha=1 - dampening)
                    bufs.append(state["momentum_buffer"])
            if group["nesterov"]:
                if weight_decay != 0:  # grads is already our own temporary: update in place
                    torch._foreach_add_(grads, bufs, alpha=momentum)
                else:  # grads are the parameters' .grad: never modify them
                    grads = torch._foreach_add(grads, bufs, alpha=momentum)
            else:
                grads = bufs
        if not self._masks:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        if len(params) == len(group["params"]):  # type: ignore[arg-type]
            masked, plain, m_params, m_masks, d_params = self._splits[index]
            m_grads = [grads[i] for i in masked]
            d_grads = [grads[i] for i in plain]
        else:  # some parameters got no gradient this step
            pairs = list(zip(params, grads, strict=True))
            m_params = [p for p, _ in pairs if p in self._masks]
            m_grads = [g for p, g in pairs if p in self._masks]
            m_masks = [self._masks[p] for p in m_params]
            d_params = [p for p, _ in pairs if p not in self._masks]
            d_grads = [g for p, g in pairs if p not in self._masks]
        if m_params:
            torch._foreach_addcmul_(m_params, m_grads, m_masks, value=-lr)
        if d_params:
            torch._foreach_add_(d_params, d_grads, alpha=-lr)
