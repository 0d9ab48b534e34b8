"""Losses: small pure functions of tensors, named as in the papers (see docs/METHODS.md).

| paper | functions |
| --- | --- |
| supervised (AnySeg / RMMSS code; M3L code) | ``ohem_cross_entropy``; ``prob_ohem_cross_entropy`` |
| AnySeg | ``mad_loss``, ``umd_loss``, ``cmd_loss`` |
| RMMSS HPDM | ``logit_kd_loss``, ``class_prototypes``, ``prototype_kd_loss``, ``random_modality_pairs``, ``ifv_kd_loss`` |
| M3L | ``pseudo_label_loss``, ``ema_update``, ``ema_decay`` |
| U2MKD | ``imputation_loss``, ``logit_kd_loss``, ``feature_kd_loss`` |
| FSM / compression | ``logit_kd_loss``, ``feature_kd_loss`` |
"""
from rmmss_core.losses.anyseg import cmd_loss, mad_loss, modality_similarity, umd_loss
from rmmss_core.losses.hpdm import (
    class_prototypes,
    ifv_kd_loss,
    image_prototype_kd,
    image_prototypes,
    intra_class_similarity,
    prototype_kd_loss,
    random_modality_pairs,
    resize_label,
)
from rmmss_core.losses.kd import feature_kd_loss, logit_kd_loss
from rmmss_core.losses.m3l import ema_decay, ema_update, pseudo_label_loss
from rmmss_core.losses.segmentation import ohem_cross_entropy, prob_ohem_cross_entropy
from rmmss_core.losses.u2mkd import imputation_loss

__all__ = [
    "class_prototypes", "cmd_loss", "ema_decay", "ema_update", "feature_kd_loss", "ifv_kd_loss", "image_prototype_kd", "image_prototypes",
    "imputation_loss", "intra_class_similarity", "logit_kd_loss", "mad_loss", "modality_similarity",
    "ohem_cross_entropy", "prob_ohem_cross_entropy", "prototype_kd_loss", "pseudo_label_loss", "random_modality_pairs",
    "resize_label", "umd_loss",
]
