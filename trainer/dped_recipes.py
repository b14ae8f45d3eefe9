"""DPED training recipes (registered in trainer.recipes), each complete for its source.

`options` name the loss forms (trainer/dped_losses.py), the blur kernel, the networks
(trainer/dped_networks.py), how the discriminator's batch is drawn, Adam's epsilon and, for
reference, the source's iteration count. Sources, read for these recipes:
- official-code: github.com/aiff22/DPED train_model.py, utils.py, models.py, vgg.py;
- paper: Ignatov et al., "DSLR-Quality Photos on Mobile Devices with Deep Convolutional
  Networks", ICCV 2017 (arXiv 1704.02470), Sec. 4 (loss function; training details);
- rebalanced: github.com/JuheonYi/DPED-TensorFlow DPED.py, ops.py, utils.py, DPED-main.ipynb.
"""
from __future__ import annotations

from phone2dslr.trainer.blocks import (dped_code_kernel, kernel_std, printed_gaussian_kernel,
                                       sampled_gaussian_kernel)
from phone2dslr.trainer.dped_networks import MEAN_RGB
from phone2dslr.trainer.recipes import Recipe, register

TF1_ADAM_EPSILON = 1e-8  # tf.compat.v1.train.AdamOptimizer's default (Keras' is 1e-7)

OFFICIAL_CODE = register(Recipe(
    model="dped", name="official-code",
    source="aiff22/DPED train_model.py:46-114, utils.py:20-49, models.py:4-132",
    learning_rate=5e-4,  # utils.py:43; one Adam per network, train_model.py:113-114
    batch_size=50,  # utils.py:41
    batches_per_step=2,  # G step, then D step on a new random batch (train_model.py:149, :160)
    head="tanh",  # models.py:54
    augment=False,  # train_model.py has none
    loss_weights={"content": 10.0, "color": 0.5, "texture": 1.0, "tv": 2000.0},  # utils.py:46-49
    options={
        "color": "half-sum",  # train_model.py:86
        "tv": "l2-mean",  # train_model.py:90-95
        "texture": "softmax-swaps",  # train_model.py:55-66
        "blur": "dped-code", "blur_size": 21, "blur_sigma": 3.0,  # utils.py:33
        "d_batch": "next",  # train_model.py:160-169
        "generator": "official", "discriminator": "official",  # models.py:4-82
        "adam_epsilon": TF1_ADAM_EPSILON,
        "iterations": 20000,  # utils.py:44
        "content_layer": "relu5_4",  # train_model.py:73
    },
    deviations=(
        "content features match only with train.vgg_weights = imagenet-vgg-verydeep-19.mat "
        "(trainer/vgg_matconvnet.py); Keras VGG-19 .h5 weights use BGR caffe preprocessing and "
        "'VALID' pooling (relu5_4 6x6 instead of 7x7 on 100 px); batches are drawn by tf.data "
        "(shuffled, repeated) instead of np.random.randint over 30000 preloaded patches "
        "(train_model.py:128, :149); swaps come from a stateless RNG keyed by the step, so a "
        "resumed run repeats them"),
), default=True)

PAPER = register(Recipe(
    model="dped", name="paper",
    source="Ignatov et al., ICCV 2017 (arXiv 1704.02470), Sec. 4: loss function and training details",
    learning_rate=5e-4,  # training details: Adam, learning rate 5e-4
    batch_size=50,  # training details: batch size 50
    head="tanh",  # the last layer: scaled tanh (0.58, 0.5 from the authors' code)
    augment=False,  # the text mentions none
    # total loss: L = L_content + 0.4 L_texture + 0.1 L_color + 400 L_tv
    loss_weights={"content": 1.0, "color": 0.1, "texture": 0.4, "tv": 400.0},
    options={
        "color": "sum",  # ||X_b - Y_b||_2^2 per image, averaged over the batch
        "tv": "l2-mean",  # 1/(CHW) ||grad_x F + grad_y F||, squared, each direction by its size
        "texture": "sigmoid-sum",  # -sum_i log D(F_W(I_s)); D a sigmoid probability
        # Sec. 3.1.1 prints G(k, l) = A exp(-(k - mu)^2 / (2 sigma) - (l - mu)^2 / (2 sigma)),
        # A = 0.053, sigma 3: taken as printed (A = 1 / (2 pi 3) normalises it for a variance of 3,
        # std 1.73 px), the same kernel as the WESPE paper recipe (which prints the same formula).
        "blur": "paper-printed", "blur_size": 21, "blur_sigma": 3.0,
        "d_batch": "same",  # D sees the batch's DSLR and enhanced images
        "generator": "paper", "discriminator": "paper",  # batch norm (text), init as the code
        "adam_epsilon": TF1_ADAM_EPSILON,
        "iterations": 20000,  # training details: 20K iterations
        "content_layer": "relu5_4",
    },
    deviations=(
        "where the text is silent we follow the authors' code: tanh scale 0.58 / offset 0.5, "
        "initialisation (truncated normal 0.01, bias 0.01), first D conv without normalization, "
        "TF's Adam epsilon 1e-8; open in the text and chosen here: colour and content averaged over "
        "the batch (texture summed, as its formula), TV squared with per-direction sizes, D's loss "
        "the summed cross-entropy on each batch's DSLR and enhanced images (one batch-norm call on "
        "both), the blur kernel taken as printed (G(k,l) = A exp(-k^2/(2 sigma) - l^2/(2 sigma)), "
        "A = 0.053 = 1/(2 pi 3): sigma 3 sits where a variance goes, std 1.73 px; the prose's "
        "'sigma 3' read as a standard deviation would be 3 px), 21x21; VGG-19 as official-code (.mat for its features)"),
))

REBALANCED = register(Recipe(
    model="dped", name="rebalanced",
    source="JuheonYi/DPED-TensorFlow DPED.py:71-213, ops.py:6-36, utils.py:54-81, DPED-main.ipynb cell 0",
    learning_rate=1e-4,  # notebook: config.learning_rate
    batch_size=50,  # notebook: config.batch_size
    head="conv1x1",  # DPED.py:90, linear 1x1 conv
    augment=True,  # utils.py:64-76: flips and rot90, each with p 0.5 (our random_dihedral: same 8)
    loss_weights={"content": 2.0, "color": 1.2, "texture": 1.0, "tv": 1.0 / 400.0},  # notebook
    options={
        "color": "255-mean",  # DPED.py:107
        "tv": "l1-sum",  # DPED.py:118
        "texture": "logit-labels",  # DPED.py:110 (G), :135-138 (D)
        "blur": "dped-code", "blur_size": 21, "blur_sigma": 3.0,  # ops.py:34-36
        "d_batch": "same",  # DPED.py:212-213: D on the G step's enhanced batch and its DSLR batch
        "generator": "rebalanced", "discriminator": "rebalanced",
        "image_offset": tuple(m / 255.0 for m in MEAN_RGB),  # ops.py:8-9, D's input
        "adam_epsilon": TF1_ADAM_EPSILON,
        "pretrain_d_steps": 10000,  # DPED.py:189, run by the notebook's cell 3
        "iterations": 100000,  # DPED.py:210
        "content_layer": "relu5_4",  # notebook: config.content_layer
    },
    deviations=(
        "content features match with the MatConvNet .mat (the source feeds img - mean_RGB to it, "
        "DPED.py:113); batches by tf.data instead of np.random over preloaded images; D pre-training "
        "counts towards train.train_steps (the source runs it before its 100000 joint steps)"),
))

# Blur width of each kernel, for the README's recipes table and the logs.
BLUR_STD_PX = {"dped-code": kernel_std(dped_code_kernel(21, 3.0)),  # 4.34 px
               "gaussian": kernel_std(sampled_gaussian_kernel(21, 3.0)),  # 2.98 px (cut at 21 taps)
               "paper-printed": kernel_std(printed_gaussian_kernel(21, sigma=3.0))}  # 1.73 px

# Not a published recipe: what the embedded demo trains in CPU minutes (configs/demo.yaml), said
# everywhere it is used. Every term is a mean on the pixel-MSE scale, so the weights read as
# shares: the fidelity terms (pixel content, blurred colour) lead and the adversarial texture
# term is a small push, as in PSNR-oriented pre-training before GAN fine-tuning (ESRGAN, Sec. 3.4).
DEMO = register(Recipe(
    model="dped", name="demo",
    source="this project (configs/demo.yaml): DPED's four terms as means, fidelity-led weights",
    learning_rate=5e-4,  # the official code's rate (utils.py:43)
    batch_size=16,
    head="conv1x1",  # with train.global_skip: a zero-initialised correction of the phone photo
    augment=True,  # flips and rot90, as rebalanced
    ema_decay=0.99,  # BasicSR/KAIR keep a generator EMA; 0.99: the last ~100 of 600 steps
    loss_weights={"content": 1.0, "color": 1.0, "texture": 0.0005, "tv": 0.0},  # texture chosen on eval
    options={
        "color": "mean",
        "tv": "l2-mean",
        "texture": "sigmoid-mean",  # non-saturating -log D(G(x)), averaged over the batch
        "blur": "dped-code", "blur_size": 21, "blur_sigma": 3.0,  # the official kernel
        "d_batch": "same",
        "generator": "plain", "discriminator": "paper",
        "adam_epsilon": 1e-7,
        "content_layer": "relu5_4",
    },
    deviations=(
        "not a source's recipe: DPED's terms as means (colour on the pixel-MSE scale), content "
        "'pixel' in the demo config (no VGG weights offline), fidelity-led weights (texture 5e-4, "
        "no TV), a no-normalisation generator with a global skip, batch 16 of 50 px patches, an "
        "EMA of the generator's weights (decay 0.99) that is validated and exported"),
))
