"""The U-Net of the keras-io depth estimation example, its loss and its train/test steps.

Faithful to keras-team/keras-io ``examples/vision/depth_estimation.py`` (Victor Basu, 2021),
with three changes that do not alter the 4-1-4 LeakyReLU model's numerics:

* the depth (number of down/up blocks) and the activation are arguments, giving the variants
  4-1-4 (filters 16, 32, 64, 128 + bottleneck 256), 3-1-3 (16, 32, 64 + 128) and Swish;
* the SSIM ``max_val`` is the ``width`` argument (the original reads the global ``WIDTH``);
* Keras 3 spelling: ``LeakyReLU(negative_slope=0.2)`` for ``LeakyReLU(alpha=0.2)``, and
  ``compile`` gets no ``loss`` (the original passed a cross-entropy its custom
  ``train_step`` never uses).

Layer attribute names (``downscale_blocks[i].convA``, ``bn2a``, ``bottle_neck_block``,
``upscale_blocks``, ``conv_layer``) are the original's: the weight converter in
``lightning_depth.convert.keras`` matches on them.
"""

from __future__ import annotations

from typing import Dict

import keras
import tensorflow as tf
from keras import layers

if keras.backend.backend() != "tensorflow":
    raise ImportError(
        "reference_keras needs the TensorFlow Keras backend (it calls tf.image.ssim), "
        f"got KERAS_BACKEND={keras.backend.backend()!r}"
    )

ACTIVATIONS = ("leaky_relu", "swish")


def _activation(name: str) -> layers.Layer:
    if name == "leaky_relu":
        return layers.LeakyReLU(negative_slope=0.2)
    if name == "swish":
        return layers.Activation("swish")
    raise ValueError(f"activation must be one of {ACTIVATIONS}, got {name!r}")


class DownscaleBlock(layers.Layer):
    """conv-BN-act-conv-BN-act, plus the first conv's output (pre-BN) as a residual; 2x2 pool.

    Returns ``(x, p)``: the block output (skip connection) and its max-pooled copy.
    """

    def __init__(
        self,
        filters: int,
        kernel_size=(3, 3),
        padding: str = "same",
        strides: int = 1,
        activation: str = "leaky_relu",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.convA = layers.Conv2D(filters, kernel_size, strides, padding)
        self.convB = layers.Conv2D(filters, kernel_size, strides, padding)
        self.reluA = _activation(activation)
        self.reluB = _activation(activation)
        self.bn2a = layers.BatchNormalization()
        self.bn2b = layers.BatchNormalization()
        self.pool = layers.MaxPool2D((2, 2), (2, 2))

    def call(self, input_tensor):
        d = self.convA(input_tensor)
        x = self.bn2a(d)
        x = self.reluA(x)

        x = self.convB(x)
        x = self.bn2b(x)
        x = self.reluB(x)

        x += d
        p = self.pool(x)
        return x, p


class UpscaleBlock(layers.Layer):
    """Nearest 2x upsampling, concat ``[x, skip]`` on channels, then conv-BN-act twice."""

    def __init__(
        self,
        filters: int,
        kernel_size=(3, 3),
        padding: str = "same",
        strides: int = 1,
        activation: str = "leaky_relu",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.us = layers.UpSampling2D((2, 2))
        self.convA = layers.Conv2D(filters, kernel_size, strides, padding)
        self.convB = layers.Conv2D(filters, kernel_size, strides, padding)
        self.reluA = _activation(activation)
        self.reluB = _activation(activation)
        self.bn2a = layers.BatchNormalization()
        self.bn2b = layers.BatchNormalization()
        self.conc = layers.Concatenate()

    def call(self, x, skip):
        x = self.us(x)
        concat = self.conc([x, skip])
        x = self.convA(concat)
        x = self.bn2a(x)
        x = self.reluA(x)

        x = self.convB(x)
        x = self.bn2b(x)
        x = self.reluB(x)

        return x


class BottleNeckBlock(layers.Layer):
    """conv-act-conv-act, no batch norm."""

    def __init__(
        self,
        filters: int,
        kernel_size=(3, 3),
        padding: str = "same",
        strides: int = 1,
        activation: str = "leaky_relu",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.convA = layers.Conv2D(filters, kernel_size, strides, padding)
        self.convB = layers.Conv2D(filters, kernel_size, strides, padding)
        self.reluA = _activation(activation)
        self.reluB = _activation(activation)

    def call(self, x):
        x = self.convA(x)
        x = self.reluA(x)
        x = self.convB(x)
        x = self.reluB(x)
        return x


class DepthEstimationModel(keras.Model):
    """The example's U-Net: ``image (B, H, W, 3) -> tanh depth (B, H, W, 1)``, channels-last.

    Args:
        depth: number of down-scale (and up-scale) blocks: 4 gives the original 4-1-4 model
            (filters 16, 32, 64, 128, bottleneck 256), 3 the 3-1-3 one (16, 32, 64 + 128).
            H and W must be divisible by ``2**depth``.
        activation: ``"leaky_relu"`` (slope 0.2, the original) or ``"swish"``.
        width: the SSIM ``max_val``; the original passes its global ``WIDTH`` = 256 (the
            image width), kept as a separate argument so smaller inputs keep the same loss.
    """

    def __init__(
        self, depth: int = 4, activation: str = "leaky_relu", width: int = 256, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        if depth < 1:
            raise ValueError(f"depth must be >= 1, got {depth}")
        self.depth = depth
        self.activation = activation
        self.width = width
        self.ssim_loss_weight = 0.85
        self.l1_loss_weight = 0.1
        self.edge_loss_weight = 0.9
        self.loss_metric = keras.metrics.Mean(name="loss")
        f = [16 * 2**i for i in range(depth + 1)]
        self.downscale_blocks = [DownscaleBlock(f[i], activation=activation) for i in range(depth)]
        self.bottle_neck_block = BottleNeckBlock(f[depth], activation=activation)
        self.upscale_blocks = [
            UpscaleBlock(f[i], activation=activation) for i in reversed(range(depth))
        ]
        self.conv_layer = layers.Conv2D(1, (1, 1), padding="same", activation="tanh")

    def loss_terms(self, target, pred) -> Dict[str, tf.Tensor]:
        """The three unweighted loss terms of ``calculate_loss``, as scalars.

        Returns:
            ``{"ssim": mean(1 - SSIM), "l1": mean |target - pred|, "smoothness": l_edges}``.
        """
        # Edges
        dy_true, dx_true = tf.image.image_gradients(target)
        dy_pred, dx_pred = tf.image.image_gradients(pred)
        weights_x = tf.exp(tf.reduce_mean(tf.abs(dx_true)))
        weights_y = tf.exp(tf.reduce_mean(tf.abs(dy_true)))

        # depth_smoothness
        smoothness_x = dx_pred * weights_x
        smoothness_y = dy_pred * weights_y

        l_edges = tf.reduce_mean(abs(smoothness_x)) + tf.reduce_mean(abs(smoothness_y))

        # Structural similarity (SSIM) index
        l_ssim = tf.reduce_mean(
            1
            - tf.image.ssim(target, pred, max_val=self.width, filter_size=7, k1=0.01**2, k2=0.03**2)
        )
        # Point-wise depth
        l1_loss = tf.reduce_mean(tf.abs(target - pred))
        return {"ssim": l_ssim, "l1": l1_loss, "smoothness": l_edges}

    def calculate_loss(self, target, pred):
        """The original loss: ``0.85 * (1 - SSIM) + 0.1 * L1 + 0.9 * smoothness``."""
        terms = self.loss_terms(target, pred)
        loss = (
            (self.ssim_loss_weight * terms["ssim"])
            + (self.l1_loss_weight * terms["l1"])
            + (self.edge_loss_weight * terms["smoothness"])
        )
        return loss

    @property
    def metrics(self):
        return [self.loss_metric]

    def train_step(self, batch_data):
        # Keras 3's train_on_batch hands over (x, y, sample_weight); fit on a generator, (x, y).
        input, target, _ = keras.utils.unpack_x_y_sample_weight(batch_data)
        with tf.GradientTape() as tape:
            pred = self(input, training=True)
            loss = self.calculate_loss(target, pred)

        gradients = tape.gradient(loss, self.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        self.loss_metric.update_state(loss)
        return {
            "loss": self.loss_metric.result(),
        }

    def test_step(self, batch_data):
        input, target, _ = keras.utils.unpack_x_y_sample_weight(batch_data)

        pred = self(input, training=False)
        loss = self.calculate_loss(target, pred)

        self.loss_metric.update_state(loss)
        return {
            "loss": self.loss_metric.result(),
        }

    def call(self, x):
        skips = []
        for block in self.downscale_blocks:
            c, x = block(x)
            skips.append(c)

        x = self.bottle_neck_block(x)

        for block, skip in zip(self.upscale_blocks, reversed(skips)):
            x = block(x, skip)

        return self.conv_layer(x)


def build_model(
    depth: int = 4,
    activation: str = "leaky_relu",
    height: int = 256,
    width: int = 256,
    learning_rate: float = 2e-4,
) -> DepthEstimationModel:
    """A built model compiled as the original: Adam(learning_rate=2e-4), eager off, no XLA.

    ``model.train_on_batch(x, y)`` then runs the original ``train_step`` with
    ``x (B, height, width, 3)`` and ``y (B, height, width, 1)``.

    Args:
        depth: 4 (4-1-4) or 3 (3-1-3); see :class:`DepthEstimationModel`.
        activation: ``"leaky_relu"`` or ``"swish"``.
        height: input height, divisible by ``2**depth``.
        width: input width, divisible by ``2**depth``. The SSIM ``max_val`` stays the
            original's 256 whatever the input size, so small test inputs see the same loss.
        learning_rate: Adam learning rate (the original's ``LR``).

    Returns:
        The compiled model, its weights created.
    """
    if height % 2**depth or width % 2**depth:
        raise ValueError(
            f"height and width must be divisible by 2**depth = {2**depth}, got {height}x{width}"
        )
    model = DepthEstimationModel(depth=depth, activation=activation)
    # A subclassed Keras 3 model creates its weights on its first call (build() would not);
    # inference mode leaves the BN moving statistics at their initial values.
    model(tf.zeros((1, height, width, 3)), training=False)
    # The original compiled with Keras 2 defaults (no XLA); Adam's epsilon is Keras' 1e-7.
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate, amsgrad=False),
        jit_compile=False,
    )
    return model
