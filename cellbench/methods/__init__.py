"""Training methods: one module per objective, each a :class:`cellbench.train.method.Method`.

* :mod:`cellbench.methods.msn` - CWA-MSN and Single-Well-MSN (Masked Siamese Networks);
* :mod:`cellbench.methods.cropmae` - CropMAE, single-well and cross-well;
* :mod:`cellbench.methods.wsl` - ViT-WSL, weakly supervised perturbation classification;
* :mod:`cellbench.methods.infonce` - cross-well InfoNCE, the positive control.

These modules sit one layer above :mod:`cellbench.train` (docs/architecture.md): they build
their networks from its building blocks (backbone, views, EMA, presets, the ``Method`` base
class), and the training loop receives them by name through
:data:`cellbench.train.methods.TRAINERS` (``"module:Class"`` strings, chosen by a model card's
``trainer``), so no import points up. Each module also holds the registry factory of its models (``models/*.toml``'s
``factory``), which turns a trained checkpoint into an encoder with
:func:`cellbench.train.export.create_encoder`. Nothing is imported here, so importing the
package stays cheap.
"""
