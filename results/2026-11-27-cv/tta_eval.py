"""Per-image held-out Dice of cross-validation checkpoints under several test-time augmentations.

Usage: python tta_eval.py <out>/unet_64px_15ep_b16_k4/default/s*.json  (each record beside its run folder
holding the kept checkpoint); writes <setting>-tta.json with, per record, the per-image Dice of each variant.
"""
import dataclasses, json, sys, glob, os
import torch, torch.nn.functional as F
from petlib.checkpoint import load_model
from petlib.config import TrainConfig
from petlib.engine import make_loaders
from petlib.metrics import dice_per_image
torch.set_num_threads(1)

def logits_at(model, x, s):
    if s == 1: return model(x)
    h, w = x.shape[-2:]
    size = (round(h * s), round(w * s))
    y = model(F.interpolate(x, size=size, mode='bilinear', align_corners=False, antialias=s < 1))
    return F.interpolate(y, size=(h, w), mode='bilinear', align_corners=False)

VARIANTS = {
    'none': ([1], False), 'flip': ([1], True),
    'flip+1.25': ([1, 1.25], True), 'flip+0.75+1.25': ([0.75, 1, 1.25], True),
    'flip+1.5': ([1, 1.5], True), 'flip+1.25+1.5': ([1, 1.25, 1.5], True),
}
out = {}
for rec in sys.argv[1:]:
    r = json.load(open(rec)); ckpt = glob.glob(rec[:-5] + '/*.pth')
    if not ckpt: continue
    config = TrainConfig.from_dict(r['config'])
    model, _ = load_model(ckpt[0], expected_model=config.model); model.eval()
    loader = make_loaders(dataclasses.replace(config, augment=False, device='cpu'), torch.device('cpu'), modes=('test',))['test']
    res = {k: [] for k in VARIANTS}
    with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16):
        for b in loader:
            x, m = b['image'], b['mask']
            cache = {}
            for name, (scales, flip) in VARIANTS.items():
                acc = 0
                for s in scales:
                    for fl in ([False, True] if flip else [False]):
                        key = (s, fl)
                        if key not in cache:
                            cache[key] = logits_at(model, x.flip(-1), s).flip(-1).float() if fl else logits_at(model, x, s).float()
                        acc = acc + cache[key]
                res[name] += dice_per_image(acc / (len(scales) * (2 if flip else 1)), m).tolist()
    out[rec] = res
    print(rec.split('/')[-3:], {k: round(sum(v)/len(v), 4) for k, v in res.items()}, 'recorded', round(r['heldout_dice'], 4), flush=True)
json.dump(out, open(sys.argv[1].split('/')[-3] + '-tta.json', 'w'), indent=1)
