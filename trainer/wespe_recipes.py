"""WESPE training recipes (registered in trainer.recipes): what each source fixes, term by term.

Options are WESPEConfig field names (wespe.py); the loss terms are in wespe_losses.py, the networks
in wespe_networks.py. Keep the names equal to phone2dslr/config.py RECIPES["wespe"].

paper        Ignatov et al., "WESPE: Weakly Supervised Photo Enhancer for Digital Cameras", CVPRW
             2018, arXiv 1709.01118. G and F: DPED's generator (Sec. 3, Fig. 2); content: VGG-19
             features of x vs F(G(x)), 1 / (C_j H_j W_j) ||psi_j(x) - psi_j(F(G(x)))|| (Sec. 3.1);
             colour: D_c on Gaussian-blurred images, L_color = -sum_i log D_c(G(x)_b) (Sec. 3.2);
             texture: D_t on grayscale images, L_texture = -sum_i log D_t(G(x)_g) (Sec. 3.3);
             TV on G(x) (Sec. 3.4); L = L_content + 5e-3 (L_color + L_texture) + 10 L_tv (Sec. 3.5);
             Adam, lr 5e-4, batch 30, 100x100 patches, 20K iterations (training details).
wespe-keras  GBATZOLIS/Wespe-Keras at e6ab21d (unchanged to HEAD 4fa9d68), the README's tuned
             modelwithVGGloss.py with loss_functions.py, preprocessing.py, data_loader.py.
"""
from __future__ import annotations

from phone2dslr.trainer.recipes import Recipe, register

PAPER = register(Recipe(
    model="wespe", name="paper",
    source="Ignatov et al., WESPE, CVPRW 2018 (arXiv 1709.01118) Sec. 3.1-3.5 and training details",
    learning_rate=5e-4, batch_size=30, head="tanh", adam_beta_1=0.9, augment=False,
    loss_weights={"content": 1.0, "color": 5e-3, "texture": 5e-3, "tv": 10.0},
    options={
        "generator": "dped-paper", "f_width": 1.0,     # DPED's (batch norm); F has G's architecture
        "discriminator": "dped",                      # 5 conv + FC 1024 + sigmoid, per image
        "blur": "paper",                              # A = 0.053, sigma = 3 (Sec. 3.2), 21x21
        "adversarial": "gan-sum",                     # -sum_i log D(.), standard GAN (not LSGAN)
        "d_loss_weight": 1.0, "d_schedule": "joint",
        "content_layer": "block5_conv4",              # relu5_4 (DPED's; see deviations)
        "content_input": "vgg", "content_loss": "mse", "cycles": 1, "tv": "dped",
        "adam_epsilon": 1e-8,                         # TF1 AdamOptimizer default (DPED's code)
    },
    deviations=(
        "left open by the paper, chosen here: content layer relu5_4 (DPED train_model.py:73; Sec. 3.1 "
        "names psi_j without j), its norm read as the mean squared error (DPED :78-79), blur size 21, "
        "TV as DPED :91-95, D losses summed over the batch like L_color, one joint update of G, F, "
        "D_c, D_t per batch with real and enhanced images in one D call, Adam beta_1 0.9 / epsilon 1e-8, "
        "no augmentation. G, F and the Ds are DPED's paper forms (batch norm; the DPED code's init)."),
), default=True)

WESPE_KERAS = register(Recipe(
    model="wespe", name="wespe-keras",
    source="GBATZOLIS/Wespe-Keras@e6ab21d modelwithVGGloss.py:87-161,167-289,346-393,485-491; "
           "loss_functions.py:110-121; preprocessing.py:22-31; data_loader.py:131-141",
    learning_rate=2e-4, batch_size=12, head="tanh", adam_beta_1=0.5, augment=False,  # :95, :491, flips off :131-133
    loss_weights={"content": 1.0, "content_b": 1.0, "color": 0.5, "texture": 0.5, "tv": 0.5},  # :159-160
    options={
        "generator": "wespe-keras", "f_width": 1.0,   # G and F both filters=64 (:117-118)
        "discriminator": "wespe-keras",               # PatchGAN with batch norm (:223-289)
        "blur": "wespe-keras",                        # gauss_kernel(23, 3) (:87-89)
        "adversarial": "lsgan-mean",                  # loss='mse' (:107-109, :159)
        "d_loss_weight": 0.5,                         # D compile loss_weights=[0.5] (:107-109)
        "d_schedule": "real-then-fake",               # train_on_batch real, then fake (:366-378)
        "content_layer": "block2_conv2",              # relu2_2 (:122)
        "content_input": "raw",                       # [0, 1] into VGG19, no preprocess_input (:390-391)
        "content_loss": "mae", "cycles": 2,           # 'mae' on both cycles (:138-142, :159)
        "tv": "wespe-keras",                          # loss_functions.total_variation
        "adam_epsilon": 1e-7,                         # Keras 2 Adam default (K.epsilon())
    },
    deviations=(
        "G+F, D_c and D_t each have their own Adam (the source shares one instance, whose iteration "
        "counter, hence bias correction, advances 5 times per batch); D's batch norm also updates its "
        "moving statistics during the G step (never read: D always runs in training mode); the VGG "
        "input is not fixed to 100x100. This revision runs BatchNormalization, not the README's "
        "InstanceNormalization, and G = F = 64 filters (G 128 / F 64 was commit 3b61645)."),
))

# Not a published recipe: what the embedded unpaired demo trains in CPU minutes
# (configs/wespe_unpaired.yaml), said wherever it is used. Wespe-Keras' structure (LSGAN means,
# both cycles) with the fidelity-led balance of the DPED demo: the cycle terms lead, the two
# adversarial terms only nudge colour and texture, G is a no-normalisation generator that starts
# as the identity (train.global_skip) and F is half as wide (the Wespe-Keras README's G > F).
# Two stabilisers the field uses, chosen because the demo's phone and DSLR photos show different
# scenes: CycleGAN's identity term (G(b) = b), so G cannot learn what tells the scenes apart, only
# what tells the cameras apart; and an EMA of G's weights (BasicSR, KAIR), which is exported,
# because unpaired training has no validation pairs to pick the best epoch with.
DEMO = register(Recipe(
    model="wespe", name="demo",
    source="this project (configs/wespe_unpaired.yaml): Wespe-Keras' loss forms, fidelity-led weights",
    learning_rate=2e-4, batch_size=16, head="conv1x1", adam_beta_1=0.5, augment=True, ema_decay=0.98,
    loss_weights={"content": 1.0, "content_b": 1.0, "color": 0.01, "texture": 0.005, "tv": 0.0,
                  "identity": 0.01},
    options={
        "identity": "mae",
        "generator": "dped-plain", "f_width": 0.5,
        "discriminator": "wespe-keras",
        "blur": "wespe-keras",
        "adversarial": "lsgan-mean",
        "d_loss_weight": 0.5, "d_schedule": "joint",
        "content_layer": "block2_conv2",
        "content_input": "vgg", "content_loss": "mse", "cycles": 2,
        "tv": "dped",
        "adam_epsilon": 1e-7,
    },
    deviations=(
        "not a source's recipe: Wespe-Keras' LSGAN PatchGANs and both cycles with fidelity-led "
        "weights (cycles 1 and 1, colour 0.01, texture 0.005, no TV), CycleGAN's L1 identity term "
        "(0.01), an EMA of G's weights (decay 0.98, exported), content 'pixel' in the demo config, "
        "a no-normalisation G with a global skip and F at half width, batch 16, flips"),
))
