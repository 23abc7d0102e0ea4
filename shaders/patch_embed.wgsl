// placeholder: patch_embed kernels (being written)
