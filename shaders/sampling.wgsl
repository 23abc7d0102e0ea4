// placeholder: sampling kernels (being written)
