// Spectral module
