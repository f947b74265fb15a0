"""Fig. 1(a), BN: the slim VGG-11 with BN and ReLU (everything in the base)."""
_base_ = './_base_/slim_vgg_shapes10.py'
