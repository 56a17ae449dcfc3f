"""The small convolutional networks of the five papers (MNIST / Fashion-MNIST scale).

Each builder takes ``in_channels``, ``num_classes``, ``input_size`` and, where a defense
replaces activations (DQA, SQA), an ``activation`` factory (default ``nn.ReLU``).
All models return logits (no softmax): the losses and attacks apply it themselves.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register

__all__ = ["CNNA", "CNNB", "LeNet", "VanillaCNN", "CleverhansCNN", "MadryMNIST", "flat_features"]


def flat_features(features: nn.Module, in_channels: int, input_size: int) -> int:
    """Number of features a convolutional trunk produces for one image (found by a dry run)."""
    was_training = features.training
    features.eval()  # batch norm cannot run in training mode on one image
    with torch.no_grad():
        n = features(torch.zeros(1, in_channels, input_size, input_size)).flatten(1).shape[1]
    features.train(was_training)
    return n


class _TwoConvCNN(nn.Module):
    """Conv + act, Conv(stride 2) + act, Dropout(0.25), FC(128) + act, Dropout(0.5), FC(classes)."""

    def __init__(self, c1, k1, c2, k2, in_channels, num_classes, input_size, activation=nn.ReLU):
        super().__init__()
        # ``block1`` / ``block2`` are named so a defense can be inserted between them (Q-inner).
        self.block1 = nn.Sequential(nn.Conv2d(in_channels, c1, k1, stride=1), activation())
        self.block2 = nn.Sequential(nn.Conv2d(c1, c2, k2, stride=2), activation(), nn.Dropout(0.25))
        n = flat_features(nn.Sequential(self.block1, self.block2), in_channels, input_size)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(n, 128), activation(), nn.Dropout(0.5), nn.Linear(128, num_classes)
        )

    def features(self, x):
        return self.block2(self.block1(x))

    def forward(self, x):
        return self.classifier(self.features(x))


@register("cnn_a", "Q-Layer paper, appendix A, table 4 (model A of Defense-GAN, Samangouei et al. 2018)",
          notes="'valid' padding (the table does not say); 924,746 parameters on MNIST")
class CNNA(_TwoConvCNN):
    """Conv(64, 5x5, 1) + ReLU, Conv(64, 5x5, 2) + ReLU, Dropout(0.25), FC(128) + ReLU, Dropout(0.5), FC(10)."""

    def __init__(self, in_channels=1, num_classes=10, input_size=28, activation=nn.ReLU):
        super().__init__(64, 5, 64, 5, in_channels, num_classes, input_size, activation)


@register("cnn_b", "Q-Layer paper, appendix A, table 4 (model B; substitute models only)",
          notes="'valid' padding (the table does not say)")
class CNNB(_TwoConvCNN):
    """Conv(128, 3x3, 1) + ReLU, Conv(64, 3x3, 2) + ReLU, Dropout(0.25), FC(128) + ReLU, Dropout(0.5), FC(10)."""

    def __init__(self, in_channels=1, num_classes=10, input_size=28, activation=nn.ReLU):
        super().__init__(128, 3, 64, 3, in_channels, num_classes, input_size, activation)


@register("lenet", "DQA paper (Rakin et al.), section 4: LeNet [LeCun et al. 1998] on MNIST",
          notes="LeNet-5 layout (6 and 16 filters of 5x5, FC 120-84) with max pooling and a pluggable activation")
class LeNet(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, input_size=28, activation=nn.ReLU):
        super().__init__()
        pad = 2 if input_size == 28 else 0  # LeNet-5 sees 32x32; pad MNIST's 28x28 to that
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=pad), activation(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5), activation(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), activation(),
            nn.Linear(120, 84), activation(), nn.Linear(84, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class VanillaCNN(nn.Module):
    """Three 3x3 convolutions (each + activation + 2x2 max pooling) and two fully connected layers."""

    def __init__(self, channels, in_channels=1, num_classes=10, input_size=28, activation=nn.ReLU, hidden=256):
        super().__init__()
        c1, c2, c3 = channels
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 3, padding=1), activation(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), activation(), nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 3, padding=1), activation(), nn.MaxPool2d(2),
        )
        n = flat_features(self.features, in_channels, input_size)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(n, hidden), activation(), nn.Linear(hidden, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


_SQA_NOTE = "3x3 kernels, 2x2 max pooling, hidden FC width 256 (the paper gives only the channel counts)"


@register("small", "SQA paper, section 4.1 and table 1: vanilla CNN SMALL, filters (16, 32, 64)", _SQA_NOTE)
def small(in_channels=1, num_classes=10, input_size=28, activation=nn.ReLU, hidden=256):
    return VanillaCNN((16, 32, 64), in_channels, num_classes, input_size, activation, hidden)


@register("large", "SQA paper, section 4.1 and table 1: vanilla CNN LARGE, filters (64, 128, 256)", _SQA_NOTE)
def large(in_channels=1, num_classes=10, input_size=28, activation=nn.ReLU, hidden=256):
    return VanillaCNN((64, 128, 256), in_channels, num_classes, input_size, activation, hidden)


@register("cleverhans_cnn", "QuSecNets paper, section IV: Cleverhans basic CNN, "
          "Conv2D(64, 8x8) Conv2D(128, 6x6) Conv2D(128, 5x5) Dense(10)",
          notes="strides and padding of cleverhans' ModelBasicCNN: 8x8/2 'same', 6x6/2 'valid', 5x5/1 'valid', ReLU")
class CleverhansCNN(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, input_size=28, activation=nn.ReLU):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 8, stride=2, padding=3), activation(),
            nn.Conv2d(64, 128, 6, stride=2), activation(),
            nn.Conv2d(128, 128, 5, stride=1), activation(),
        )
        n = flat_features(self.features, in_channels, input_size)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(n, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


@register("madry_mnist", "Madry et al. 2018, the MNIST challenge network: Conv(32, 5x5) + 2x2 max pooling, "
          "Conv(64, 5x5) + 2x2 max pooling, FC(1024), FC(10)",
          notes="'same' padding, ReLU, as in the challenge's code; the book's reference architecture for "
                "PGD-trained baselines (about 89% at MNIST eps 0.3 in the paper)")
class MadryMNIST(nn.Module):
    def __init__(self, in_channels=1, num_classes=10, input_size=28, activation=nn.ReLU):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 5, padding=2), activation(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 5, padding=2), activation(), nn.MaxPool2d(2),
        )
        n = flat_features(self.features, in_channels, input_size)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(n, 1024), activation(), nn.Linear(1024, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))
