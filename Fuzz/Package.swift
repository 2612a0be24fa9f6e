// swift-tools-version: 6.1
// libFuzzer harnesses for weightsmith's parsers, kept out of the main package so that its
// `swift build` and `swift test` are unaffected. Build and run with `scripts/fuzz.sh`
// (Linux: `-sanitize=fuzzer,address`); see RELIABILITY.md, "Fuzzing".
import PackageDescription

let package = Package(
    name: "weightsmith-fuzz",
    platforms: [.macOS(.v14)],
    dependencies: [.package(name: "weightsmith", path: "..")],
    targets: [
        .executableTarget(
            name: "weightsmith-fuzz",
            dependencies: [.product(name: "WeightsmithKit", package: "weightsmith")]
        ),
    ]
)
