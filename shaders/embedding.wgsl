// placeholder: embedding kernels (being written)
