"""Supervised fine-tuning and post-pre-training (official run_class_finetuning.py +
engine_for_finetuning.py; spec 5, 9.3).

Per step, on the device: uint8 clips -> ImageNet normalisation -> random-erasing
fill of the pipeline's boxes (fresh N(0, 1) per frame) -> batch mixup/cutmix with
label smoothing -> Classifier -> soft-target cross-entropy. AdamW (0.9, 0.999),
eps 1e-8, layer-wise lr decay, the no-decay set, per-step warmup-from-0 + cosine,
lr scaled by videos per step / 256. `eval_every` steps: 1-view validation; at the
end: the full multi-view test protocol (spec 5.4) -> metrics.jsonl
(test_top1/test_top5) and predictions.csv in the workdir. `train_top1` is the
top-1 of the training clips against their un-mixed labels.

"Post-pre-training" is fine-tuning on K710 (configs/finetune/k710.py); the
intermediate-tuned K400/K600 runs start from that workdir with a label map.
"""

from __future__ import annotations

import jax.numpy as jnp

from vmae2.core.supervised import SupervisedStage
from vmae2.models.classifier import Classifier
from vmae2.ops import losses
from vmae2.weights import surgery


class Finetune(SupervisedStage):
    """The fine-tuning stage (module docstring)."""

    def build_model(self, rngs):
        return Classifier(self.model_cfg, self.num_classes, rngs=rngs)

    def init_from(self, target):
        return surgery.init_params(self.cfg.init_from, target, label_map_path=self.cfg.head_label_map)

    def loss(self, model, batch, rng, frozen):
        """Summed soft-target CE over the rows, the row count, and correct top-1s."""
        del frozen
        logits = model(batch['x'], rng=self.drop_rng(rng))
        ce = losses.soft_target_cross_entropy_per_example(logits, batch['targets'])
        sums = {'train_top1': self.correct(logits, batch['label'])}
        return ce.sum(), jnp.asarray(ce.shape[0], jnp.float32), sums

    def describe(self, exp):
        return f'fine-tuning {super().describe(exp)}, layer decay {self.cfg.optim.layer_decay:.3g}'
