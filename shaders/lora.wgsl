// placeholder: lora kernels (being written)
