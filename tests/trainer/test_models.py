import pytest

from phone2dslr.config import TrainConfig
from phone2dslr.trainer import dped, models, wespe


def test_create_model_dispatches_on_train_model():
    for name, cls in (("dped", dped.DPED), ("wespe", wespe.WESPE)):
        model = models.create_model(TrainConfig(model=name, content="pixel", filters=4), patch_size=16)
        assert isinstance(model, cls) and model.generator.input_shape == (None, None, None, 3)
    with pytest.raises(ValueError, match="not one of"):
        models.create_model(TrainConfig(model="srgan", content="pixel"))
