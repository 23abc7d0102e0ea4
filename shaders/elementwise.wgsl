// placeholder: elementwise kernels (being written)
