#!/usr/bin/env python3
"""One training step (forward + backward + AdamW) of the flood model, floodtrain vs the reference
PyTorch code (PyPI claymodel 1.5.0), same CPU, batch, input size and architecture, in one run.

Set-up (not needed by CI):
    python3 -m venv venv && venv/bin/pip install torch torchvision timm einops
    venv/bin/pip install --no-deps claymodel==1.5.0
    cargo build --release -p floodtrain
    venv/bin/python bench/train_step_vs_pytorch.py --mode full --batch 4

The claymodel wheel installs model.py, factory.py, backbone.py, utils.py at the top level of
site-packages while they import `src.*`; this script builds a throw-away `src` package of
symlinks to them in a temporary folder.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

PRESETS = {  # REFERENCE.md §2
    "tiny": dict(dim=192, depth=6, heads=4, dim_head=48, mlp_ratio=2),
    "small": dict(dim=384, depth=6, heads=6, dim_head=64, mlp_ratio=2),
    "base": dict(dim=768, depth=12, heads=12, dim_head=64, mlp_ratio=4),
    "large": dict(dim=1024, depth=24, heads=16, dim_head=64, mlp_ratio=4),
}


def import_clay_encoder():
    import importlib.util

    site = os.path.dirname(importlib.util.find_spec("factory").origin)
    pkg = tempfile.mkdtemp(prefix="claysrc-")
    os.makedirs(os.path.join(pkg, "src"))
    open(os.path.join(pkg, "src", "__init__.py"), "w").close()
    for name in ("model", "factory", "backbone", "utils", "mrl"):
        src = os.path.join(site, name + ".py")
        if os.path.exists(src):
            os.symlink(src, os.path.join(pkg, "src", name + ".py"))
    sys.path.insert(0, pkg)
    from src.model import Encoder  # noqa: E402

    return Encoder


def build(args):
    import torch
    from torch import nn

    Encoder = import_clay_encoder()
    p = PRESETS[args.preset]
    encoder = Encoder(mask_ratio=0.0, patch_size=8, shuffle=False, **p)

    class LoraLinear(nn.Module):
        """W x + (alpha/r) B A x with W frozen (what burn's Lora computes)."""

        def __init__(self, base, rank):
            super().__init__()
            self.base = base
            self.a = nn.Parameter(torch.randn(base.in_features, rank) / rank)
            self.b = nn.Parameter(torch.zeros(rank, base.out_features))

        def forward(self, x):
            return self.base(x) + (x @ self.a) @ self.b

    if args.mode in ("frozen", "lora"):
        for param in encoder.parameters():
            param.requires_grad_(False)
    if args.mode == "lora":
        for attn, _ in encoder.transformer.layers:
            attn.to_qkv = LoraLinear(attn.to_qkv, args.lora_rank)

    d = p["dim"]
    head = nn.Sequential(
        nn.ConvTranspose2d(d, 256, 2, 2), nn.ReLU(),
        nn.ConvTranspose2d(256, 128, 2, 2), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 2, 2), nn.ReLU(),
        nn.Conv2d(64, 1, 3, padding=1),
    )
    return encoder, head


def torch_step_times(args):
    import torch
    import torch.nn.functional as F

    torch.manual_seed(1)
    torch.set_num_threads(args.threads)
    encoder, head = build(args)
    params = [q for q in list(encoder.parameters()) + list(head.parameters()) if q.requires_grad]
    optim = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    b, s = args.batch, args.size
    cube = {
        "pixels": torch.randn(b, 2, s, s),
        "time": torch.zeros(b, 4),
        "latlon": torch.zeros(b, 4),
        "gsd": torch.tensor(10.0),
        "waves": torch.tensor([3.5, 4.0]),
    }
    target = (torch.rand(b, 1, s, s) < 0.3).float()
    grid = s // 8
    def step():
        laps = [time.perf_counter()]
        tokens = encoder(cube)[0][:, 1:, :]
        features = tokens.transpose(1, 2).reshape(b, -1, grid, grid)
        logits = head(features)
        p = torch.sigmoid(logits)
        bce = F.binary_cross_entropy_with_logits(logits, target)
        dice = 1 - (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
        loss = bce + dice
        laps.append(time.perf_counter())
        optim.zero_grad()
        loss.backward()
        laps.append(time.perf_counter())
        optim.step()
        laps.append(time.perf_counter())
        return [(b - a) * 1e3 for a, b in zip(laps, laps[1:])]

    phases = []
    for i in range(args.warmup + args.steps):
        laps = step()
        if i >= args.warmup:
            phases.append(laps)
    times = sorted(sum(laps) for laps in phases)
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    report = {
        "implementation": f"claymodel 1.5.0 on torch {torch.__version__} ({args.threads} threads)",
        "trainable_params": sum(q.numel() for q in params),
        "step_ms_median": times[len(times) // 2],
        "step_ms_min": times[0],
        "phase_ms_median": {
            name: median([laps[k] for laps in phases])
            for k, name in enumerate(["forward_and_loss", "backward", "optimizer"])
        },
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    if args.torch_profile:
        # One more step under torch's profiler: where torch's own time goes, op by op.
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            step()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=args.torch_profile),
              file=sys.stderr)
    return report


def floodtrain_step_times(args):
    cmd = [args.floodtrain, "bench", "--preset", args.preset, "--mode", args.mode,
           "--lora-rank", str(args.lora_rank), "--batch", str(args.batch), "--size", str(args.size),
           "--steps", str(args.steps), "--warmup", str(args.warmup), "--device", args.device]
    env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads), OMP_NUM_THREADS=str(args.threads))
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env)
    report = json.loads(out.stdout)
    report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return report


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--floodtrain", default="target/release/floodtrain")
    ap.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    ap.add_argument("--mode", default="full", choices=["full", "lora", "frozen"])
    ap.add_argument("--lora-rank", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--device", default="cpu",
                    help="floodtrain's device: cpu (flex), or libtorch for a build with "
                         "--features libtorch (then LD_LIBRARY_PATH must reach PyTorch 2.9.0's torch/lib)")
    ap.add_argument("--torch-profile", type=int, default=0, metavar="ROWS",
                    help="also print torch's profiler table of one step (top ROWS ops) to stderr")
    args = ap.parse_args()

    ours = floodtrain_step_times(args)
    ref = torch_step_times(args)
    if ours["trainable_params"] != ref["trainable_params"]:
        print(f"warning: trainable parameters differ: floodtrain {ours['trainable_params']}, "
              f"PyTorch {ref['trainable_params']}", file=sys.stderr)
    print(json.dumps({"floodtrain": ours, "pytorch": ref,
                      "ratio_floodtrain_over_pytorch": ours["step_ms_median"] / ref["step_ms_median"]}, indent=2))


if __name__ == "__main__":
    main()
