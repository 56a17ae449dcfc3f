"""The deeper networks: ResNet-18/34 for 32x32 inputs, VGG16, and an AlexNet-style substitute.

Built from torchvision's implementations with the stem adapted to small images, as is usual
for CIFAR-10 (3x3 first convolution, no initial max pooling).
"""
from __future__ import annotations

import torch.nn as nn
from torchvision.models import resnet as tv_resnet
from torchvision.models import vgg as tv_vgg

from .cnns import flat_features
from .registry import register

__all__ = ["resnet_small_images", "VGG16", "AlexNetSmall"]


def resnet_small_images(layers, in_channels=3, num_classes=10, input_size=32, block=tv_resnet.BasicBlock):
    """torchvision's ResNet with the CIFAR stem: Conv 3x3 stride 1, no max pooling."""
    model = tv_resnet.ResNet(block, layers, num_classes=num_classes)
    model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


@register("resnet18", "DQA paper, section 4 (ResNet-18 on CIFAR-10); He et al. 2016",
          notes="torchvision ResNet-18 with the CIFAR stem (3x3 conv, no max pooling)")
def resnet18(in_channels=3, num_classes=10, input_size=32):
    return resnet_small_images([2, 2, 2, 2], in_channels, num_classes, input_size)


@register("resnet34", "SQA paper, table 2 (RES34 on CIFAR-10); He et al. 2016",
          notes="torchvision ResNet-34 with the CIFAR stem (3x3 conv, no max pooling)")
def resnet34(in_channels=3, num_classes=10, input_size=32):
    return resnet_small_images([3, 4, 6, 3], in_channels, num_classes, input_size)


@register("resnet101", "SQA paper, table 2 (RES101 on CIFAR-10); He et al. 2016",
          notes="torchvision ResNet-101 (bottleneck blocks) with the CIFAR stem (3x3 conv, no max pooling)")
def resnet101(in_channels=3, num_classes=10, input_size=32):
    return resnet_small_images([3, 4, 23, 3], in_channels, num_classes, input_size, tv_resnet.Bottleneck)


@register("vgg16", "DQA paper, table 6: VGG16 substitute for black-box attacks; Simonyan & Zisserman 2015",
          notes="torchvision's VGG16 configuration 'D' with batch norm and a single Linear(512, classes) "
                "head, as usual at 32x32; at 28x28 the last max pooling is dropped")
class VGG16(nn.Module):
    def __init__(self, in_channels=3, num_classes=10, input_size=32):
        super().__init__()
        layers, c = [], in_channels
        cfg = list(tv_vgg.cfgs["D"])
        if input_size == 28:
            cfg = cfg[:-1]  # 28 -> 14 -> 7 -> 3 -> 1: a fifth pooling would leave nothing
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                c = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(flat_features(self.features, in_channels, input_size), num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


@register("alexnet", "DQA paper, table 6: AlexNet substitute for black-box attacks",
          notes="the small-image AlexNet of Krizhevsky's cuda-convnet CIFAR-10 model "
                "(Conv 64 5x5, pool, Conv 64 5x5, pool, FC 384, FC 192), without local response normalisation")
class AlexNetSmall(nn.Module):
    def __init__(self, in_channels=3, num_classes=10, input_size=32):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, padding=1),
            nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, padding=1),
        )
        n = flat_features(self.features, in_channels, input_size)
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(n, 384), nn.ReLU(inplace=True),
            nn.Linear(384, 192), nn.ReLU(inplace=True), nn.Linear(192, num_classes),
        )

    def forward(self, x):
        return self.classifier(self.features(x))
