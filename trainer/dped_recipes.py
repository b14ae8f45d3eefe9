"""DPED training recipes (registered in trainer.recipes). SKELETON: being rewritten to follow each
source term by term (issue: training that matches its sources)."""
from __future__ import annotations

from phone2dslr.trainer.recipes import Recipe, register

OFFICIAL_CODE = register(Recipe(
    model="dped", name="official-code", source="aiff22/DPED train_model.py, utils.py, models.py",
    learning_rate=5e-4, batch_size=50, head="tanh",
    loss_weights={"content": 10.0, "color": 0.5, "texture": 1.0, "tv": 2000.0}), default=True)
PAPER = register(Recipe(
    model="dped", name="paper", source="Ignatov et al., ICCV 2017",
    learning_rate=5e-4, batch_size=50, head="tanh",
    loss_weights={"content": 1.0, "color": 0.1, "texture": 0.4, "tv": 400.0}))
REBALANCED = register(Recipe(
    model="dped", name="rebalanced", source="JuheonYi/DPED-TensorFlow DPED.py, DPED-main.ipynb",
    learning_rate=1e-4, batch_size=50, head="conv1x1",
    loss_weights={"content": 2.0, "color": 1.2, "texture": 1.0, "tv": 1.0 / 400.0}))
