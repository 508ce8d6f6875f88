"""A physics-informed network for a 1-D boundary-value problem: which activation lets it solve it?

Poisson's equation u''(x) = f(x) on [-1, 1] with u(-1) = u(1) = 0 and f chosen so that the exact
solution is u(x) = sin(2πx) + 0.3·sin(5πx) (Raissi, Perdikaris & Karniadakis 2019: the network is
trained only on the equation's residual at collocation points and on the boundary values). The
loss takes autograd's second derivative of the network with respect to its input, so ReLU —
whose second derivative is zero almost everywhere — cannot represent any residual: the activation
decides here. The score is −log10 of the relative L2 error against the exact solution (higher is
better; 2 means 1% error).

    actsearch search --task examples/tasks/poisson_pinn.py --trials 32
    actsearch compare relu tanh sin --task examples/tasks/poisson_pinn.py --seeds 3

This task controls its own training loop (``train=``): ``act(num_channels)`` makes the activation
of one layer, ``seed`` fixes initialization and collocation points, ``report(step, value)``
returns True when the search's pruner stops the run.
"""
import math

import torch
from torch import nn

import actsearch

STEPS, EVAL_EVERY, POINTS, WIDTH = 1500, 300, 64, 32


def exact(x: torch.Tensor) -> torch.Tensor:
    return torch.sin(2 * math.pi * x) + 0.3 * torch.sin(5 * math.pi * x)


def forcing(x: torch.Tensor) -> torch.Tensor:  # u'' of the exact solution
    return -(2 * math.pi) ** 2 * torch.sin(2 * math.pi * x) - 0.3 * (5 * math.pi) ** 2 * torch.sin(5 * math.pi * x)


def train(act, seed, report):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(1, WIDTH), act(WIDTH), nn.Linear(WIDTH, WIDTH), act(WIDTH), nn.Linear(WIDTH, 1))
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    grid = torch.linspace(-1, 1, POINTS + 1)[:-1]
    x = (grid + torch.rand(POINTS) * (2 / POINTS)).unsqueeze(1).requires_grad_(True)  # collocation points
    ends = torch.tensor([[-1.0], [1.0]])
    x_eval = torch.linspace(-1, 1, 401).unsqueeze(1)
    u_eval = exact(x_eval)
    score = float("nan")
    for step in range(1, STEPS + 1):
        u = net(x)
        du = torch.autograd.grad(u.sum(), x, create_graph=True)[0]
        d2u = torch.autograd.grad(du.sum(), x, create_graph=True)[0]
        residual = d2u - forcing(x)
        loss = (residual ** 2).mean() / (2 * math.pi) ** 4 + (net(ends) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % EVAL_EVERY == 0:
            with torch.no_grad():
                err = torch.linalg.norm(net(x_eval) - u_eval) / torch.linalg.norm(u_eval)
            score = -math.log10(float(err) + 1e-12)
            if report(step, score):
                break
    return score


task = actsearch.Task("poisson-pinn", train=train)
