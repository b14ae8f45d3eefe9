"""WESPE training recipes (registered in trainer.recipes). SKELETON: being rewritten to follow each
source term by term (issue: training that matches its sources)."""
from __future__ import annotations

from phone2dslr.trainer.recipes import Recipe, register

PAPER = register(Recipe(
    model="wespe", name="paper", source="Ignatov et al., CVPRW 2018",
    learning_rate=2e-4, batch_size=30, head="tanh", adam_beta_1=0.5,
    loss_weights={"content": 1.0, "color": 5e-3, "texture": 5e-3, "tv": 10.0}), default=True)
WESPE_KERAS = register(Recipe(
    model="wespe", name="wespe-keras", source="GBATZOLIS/Wespe-Keras",
    learning_rate=2e-4, batch_size=30, head="conv1x1", adam_beta_1=0.5,
    loss_weights={"content": 1.0, "color": 5e-3, "texture": 5e-3, "tv": 10.0}))
