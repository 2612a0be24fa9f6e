// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "weightsmith",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "WeightsmithKit", targets: ["Tensors", "Checkpoints", "Merging", "Spectral", "Tokenizers", "Transformer", "Editing", "Grafting"]),
        .executable(name: "weightsmith", targets: ["weightsmith"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.0"),
    ],
    targets: [
        // C glue: cblas.h + lapacke.h, links openblas and lapacke (Debian: libopenblas-dev, liblapacke-dev).
        .systemLibrary(name: "CLinearAlgebra", path: "Sources/CLinearAlgebra"),
        // Fast f16/bf16 <-> f32 with a run-time F16C/AVX2 check (no build flags).
        .target(name: "CConversions"),
        .target(name: "Tensors", dependencies: ["CLinearAlgebra", "CConversions"], exclude: ["README.md"]),
        // sync_file_range (early writeback of large outputs), which Glibc's Swift module lacks.
        .target(name: "CFileIO"),
        .target(name: "Checkpoints", dependencies: ["Tensors", "CFileIO"], exclude: ["README.md"]),
        // AVX2 (run-time checked) inner loops of the streamed TIES/DARE kernel.
        .target(name: "CMergeKernels"),
        .target(name: "Merging", dependencies: ["Tensors", "Checkpoints", "CMergeKernels", "Yams"], exclude: ["README.md"]),
        .target(name: "Spectral", dependencies: ["Tensors", "Checkpoints"], exclude: ["README.md"]),
        // AVX2 (run-time checked) matrix-vector kernels over GGUF block-quantised weights, for decoding.
        .target(name: "CTransformerKernels"),
        // Byte-level BPE tokenizers from tokenizer.json or GGUF metadata, apart from the models (as swift-transformers keeps Tokenizers).
        .target(name: "Tokenizers", dependencies: ["Checkpoints"], exclude: ["README.md"]),
        .target(name: "Transformer", dependencies: ["Tensors", "Checkpoints", "Tokenizers", "CLinearAlgebra", "CTransformerKernels"], exclude: ["README.md", "Training/Training.md"]),
        .target(name: "Editing", dependencies: ["Tensors", "Checkpoints", "Tokenizers", "Transformer", "CLinearAlgebra"], exclude: ["README.md"]),
        // Skill localization and sparse fine-tunes: magnitude and trained grafts (Panigrahi et al. 2023), mask overlap, LT-SFT (Ansell et al. 2022).
        .target(name: "Grafting", dependencies: ["Tensors", "Checkpoints", "Tokenizers", "Transformer", "Spectral"], exclude: ["README.md"]),
        .executableTarget(
            name: "weightsmith",
            dependencies: [
                "Tensors", "Checkpoints", "Merging", "Spectral", "Tokenizers", "Transformer", "Editing", "Grafting", "CFileIO",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .executableTarget(name: "weightsmith-bench", dependencies: ["Tensors", "Checkpoints", "Spectral"], path: "Benchmarks/weightsmith-bench"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "CConversions"]),
        .testTarget(name: "CheckpointsTests", dependencies: ["Checkpoints"], resources: [.copy("Fixtures")]),
        .testTarget(name: "MergingTests", dependencies: ["Merging", "Checkpoints", "CMergeKernels"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SpectralTests", dependencies: ["Spectral", "Checkpoints", "Tensors"], resources: [.copy("Fixtures")]),
        .testTarget(name: "EditingTests", dependencies: ["Editing", "Tokenizers", "Transformer", "Tensors"], resources: [.copy("Fixtures")]),
        .testTarget(name: "TransformerTests", dependencies: ["Tokenizers", "Transformer", "Merging", "Checkpoints", "Tensors"], resources: [.copy("Fixtures")]),
        .testTarget(name: "GraftingTests", dependencies: ["Grafting", "Tokenizers", "Transformer", "Checkpoints", "Tensors", "Spectral"]),
    ]
)
