// placeholder: traversal kernels (being written)
