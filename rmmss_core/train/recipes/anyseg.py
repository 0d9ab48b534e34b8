"""``anyseg``: AnySeg's student (Zheng et al. 2024).

Any-modal dropout for the student (``loss.dropout_per``: one subset per batch as the code, or per
sample); a frozen full-modality teacher (``teacher=PATH``) sees every modality.
``L = OHEM-CE + 50 L_mad + 5 L_umd + 10 L_cmd`` (weights in ``loss.*``), each term as the authors'
code computes it by default (rmmss_core/losses/anyseg.py; readings in ``loss.*`` options).
"""
from __future__ import annotations

from rmmss_core.losses import cmd_loss, mad_loss, umd_loss
from rmmss_core.train.recipes.distill import DistillRecipe, DistillStep


class AnySegRecipe(DistillRecipe):
    name = "anyseg"

    def loss_terms(self, st: DistillStep):
        w = self.cfg.loss
        s_feats = [f.float() for f in st.student.features.per_modality]
        t_feats = [f.float() for f in st.teacher.features.per_modality]
        return {
            "mad": mad_loss(st.student.logits.float(), st.teacher.logits.float(), reduction=w.kl_reduction),
            "umd": umd_loss(s_feats, t_feats, st.mask, axis=w.umd_axis, stages=w.umd_stages),
            "cmd": cmd_loss(s_feats, t_feats, st.mask, per_channel=w.cmd_per_channel, stages=w.cmd_stages),
        }

    def weights(self):
        w = self.cfg.loss
        return {"mad": w.mad, "umd": w.umd, "cmd": w.cmd}
