// Transformer module
