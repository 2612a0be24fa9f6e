import Checkpoints
import Editing
import Foundation
import Merging
import Transformer
import Tokenizers

/// One libFuzzer binary, six harnesses; `WEIGHTSMITH_FUZZ=<name>` picks the one to run
/// (`scripts/fuzz.sh` sets it). Each harness hands the input bytes to the library's own parsing
/// entry point, in memory, exactly as a file's contents would be. A thrown error is the expected
/// outcome for hostile input; a trap, a sanitizer report, a timeout or an RSS above the limit
/// is a finding.
enum Harness: String, CaseIterable {
    /// The safetensors header: length prefix, strict JSON, entries, layout (overlaps, gaps, coverage).
    case safetensors
    /// GGUF v2/v3: header, metadata key/values (nested arrays), tensor infos, alignment, bounds.
    case gguf
    /// Merge recipes: single documents and multi-document recipes (`---`, `name:`, dependencies).
    case recipe
    /// JSONL readers: prompt/completion (eval, finetune), edit requests (JSONL or JSON array), locality prompts.
    case jsonl
    /// Hugging Face `tokenizer.json`; a tokenizer that loads encodes a short text.
    case tokenizer
    /// PEFT `adapter_config.json`; a config that validates answers rank/alpha/target queries.
    case adapter

    static let current: Harness = {
        let name = ProcessInfo.processInfo.environment["WEIGHTSMITH_FUZZ"] ?? ""
        guard let h = Harness(rawValue: name) else {
            let names = Harness.allCases.map(\.rawValue).joined(separator: ", ")
            FileHandle.standardError.write(Data("set WEIGHTSMITH_FUZZ to one of: \(names)\n".utf8))
            exit(2)
        }
        return h
    }()

    func run(_ bytes: UnsafeRawBufferPointer) {
        switch self {
        case .safetensors:
            _ = try? SafetensorsFile.validateHeader(Array(bytes))
        case .gguf:
            if let parsed = try? GGUFFile.validate(bytes) {
                // Typed accessors over whatever metadata parsed.
                for key in parsed.metadata.keys.prefix(8) {
                    _ = try? parsed.metadata.string(key)
                    _ = try? parsed.metadata.int(key)
                    _ = try? parsed.metadata.intArray(key)
                }
                _ = parsed.tensors.map { ($0.shape, $0.elementCount) }
            }
        case .recipe:
            guard let text = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else { return }
            _ = try? MultiRecipe.parse(text)
        case .jsonl:
            let data = Data(bytes)
            _ = try? PromptCompletion.parseJSONL(data, path: "<fuzz>")
            guard let text = String(validating: bytes.bindMemory(to: UInt8.self), as: UTF8.self) else { return }
            _ = try? EditRequest.parseJSONL(text, path: "<fuzz>")
            _ = try? EditRequest.parsePrompts(text, path: "<fuzz>")
        case .tokenizer:
            if let t = try? BPETokenizer(tokenizerJSONData: Data(bytes), path: "<fuzz>") {
                let ids = t.encode("Hello wörld 123 <|endoftext|>\n")
                _ = try? t.decode(ids)
            }
        case .adapter:
            if let c = try? AdapterConfig(jsonBytes: Array(bytes), path: "<fuzz>") {
                for m in ["model.layers.0.self_attn.q_proj", "lm_head", "mlp.down_proj"] {
                    _ = (c.rank(for: m), c.scale(for: m), c.isTarget(m))
                }
                _ = c.jsonText()
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Harness.current.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

/// libFuzzer's driver entry point (compiler-rt `FuzzerInterface.h`): parses libFuzzer's flags
/// and runs the callback. SwiftPM renames an executable's `main`, so the driver is started from
/// Swift's entry point rather than from libFuzzer's own `main`.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@main
enum FuzzMain {
    static func main() {
        _ = Harness.current  // fail fast on a missing or unknown harness name
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOneInput))
    }
}
