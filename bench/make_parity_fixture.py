#!/usr/bin/env python3
"""Write a Clay encoder parity fixture (the layout of ../shared/fixtures/clay-parity) from the
reference PyTorch code, for any dims, bands and input size, to check `floodtrain parity` beyond
the shared fixture:

    venv/bin/python bench/make_parity_fixture.py OUT_DIR --dim 96 --depth 3 --heads 3 \
        --dim-head 32 --mlp-ratio 4 --sensor s2 --size 48 --batch 3 --seed 11
    cargo run --release -p floodtrain -- parity OUT_DIR

Set-up as in train_step_vs_pytorch.py (torch, torchvision, timm, einops, claymodel 1.5.0).
"""
import argparse
import json
import os

from train_step_vs_pytorch import import_clay_encoder

WAVES = {"s1": [3.5, 4.0], "s2": [0.493, 0.56, 0.665, 0.704, 0.74, 0.783, 0.842, 0.865, 1.61, 2.19]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out")
    ap.add_argument("--dim", type=int, default=96)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--heads", type=int, default=3)
    ap.add_argument("--dim-head", type=int, default=32)
    ap.add_argument("--mlp-ratio", type=int, default=4)
    ap.add_argument("--sensor", choices=sorted(WAVES), default="s2")
    ap.add_argument("--size", type=int, default=48, help="square input side (Clay's add_encodings assumes a square grid)")
    ap.add_argument("--batch", type=int, default=3)
    ap.add_argument("--gsd", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()

    import torch
    from einops import rearrange
    from safetensors.torch import save_file
    torch.manual_seed(args.seed)
    Encoder = import_clay_encoder()
    from src.utils import posemb_sincos_1d
    enc = Encoder(mask_ratio=0.0, patch_size=8, shuffle=False, dim=args.dim, depth=args.depth,
                  heads=args.heads, dim_head=args.dim_head, mlp_ratio=args.mlp_ratio).eval()
    # Move LayerNorm and bias parameters away from their 1/0 initial values so they are checked.
    with torch.no_grad():
        for name, p in enc.named_parameters():
            if name.endswith("bias") or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)

    waves = torch.tensor(WAVES[args.sensor])
    b, c, s = args.batch, len(WAVES[args.sensor]), args.size
    pixels = torch.randn(b, c, s, s)
    time_ = torch.randn(b, 4).clamp(-1, 1)
    latlon = torch.randn(b, 4).clamp(-1, 1)
    gsd = torch.tensor([args.gsd])
    with torch.no_grad():
        pe = enc.patch_embedding
        w = pe.fclayer(posemb_sincos_1d(waves, pe.wave_dim))
        weight, bias = pe.weight_generator(w)
        kernel = rearrange(weight, "cin (cout k1 k2) -> cout cin k1 k2", k1=8, k2=8) * 0.02
        patch_embed, _ = enc.to_patch_embed(pixels, waves)
        with_enc = enc.add_encodings(patch_embed, time_, latlon, gsd)
        out = enc({"pixels": pixels, "time": time_, "latlon": latlon, "gsd": gsd, "waves": waves})[0]

    os.makedirs(args.out, exist_ok=True)
    state = {f"model.encoder.{k}": v.contiguous() for k, v in enc.state_dict().items()}
    torch.save({"state_dict": state, "epoch": 0, "global_step": 0}, os.path.join(args.out, "clay_encoder.ckpt"))
    save_file(state, os.path.join(args.out, "clay_encoder.safetensors"))
    save_file({"pixels": pixels, "time": time_, "latlon": latlon, "waves": waves, "gsd": gsd,
               "patch_kernel": kernel.contiguous(), "patch_bias": bias.contiguous(),
               "patch_embed": patch_embed.contiguous(), "with_encodings": with_enc.contiguous(),
               "encoder_out": out.contiguous()}, os.path.join(args.out, "io.safetensors"))
    json.dump({"dim": args.dim, "depth": args.depth, "heads": args.heads, "dim_head": args.dim_head,
               "mlp_ratio": args.mlp_ratio, "patch_size": 8, "bands": args.sensor, "waves": WAVES[args.sensor],
               "gsd": args.gsd, "batch": b, "height": s, "width": s, "seed": args.seed,
               "reference": "claymodel 1.5.0 (PyPI), Encoder with mask_ratio=0, shuffle=False"},
              open(os.path.join(args.out, "config.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
