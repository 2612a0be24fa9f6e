import ArgumentParser
import Checkpoints
import Editing
import Foundation
import Transformer
import Tokenizers

/// The editing methods of `edit` and `edit-eval`.
enum EditMethod: String, ExpressibleByArgument, CaseIterable { case rome, ft, mend, memit }

/// The settings of every editor, shared by `edit` and `edit-eval` (one set of flags, one place
/// that turns them into the library's settings).
struct EditorOptions: ParsableArguments {
    @Option(name: .long, help: "Layer whose MLP output matrix is edited (default: 5/32 of the layers, rounded down).") var layer: Int?
    @Option(name: .long, help: "MEND: the trained editor (.safetensors from train-editor).") var editor: String?

    @Option(name: .long, help: "ROME and MEMIT: text corpus for the key statistics (ROME default: none, C = I; MEMIT needs it).") var statsCorpus: String?
    @Option(name: .long, help: "ROME and MEMIT: tokens of the corpus used for the statistics.") var statsTokens = 20_000
    @Option(name: .long, help: "ROME and MEMIT: cache folder for the key statistics and MEMIT's value vectors (default: ~/.cache/weightsmith).") var statsCache: String?
    @Option(name: .long, help: "Optimisation steps: ROME's and MEMIT's value offset (default 25), FT-L's Adam steps (default 25); MEND has none.") var steps: Int?
    @Option(name: .long, help: "ROME and MEMIT: context templates sampled from the model.") var contexts = 5
    @Option(name: .long, help: "ROME and MEMIT: Adam learning rate of the value offset.") var valueLr: Float = 0.5
    @Option(name: .long, help: "Clamp of the value offset: ROME in multiples of |W k| (default 4); MEMIT in multiples of the residual stream's norm at the subject (default 0.75, the reference's).") var clampNorm: Float?
    @Option(name: .long, help: "ROME and MEMIT: weight of the essence term, KL at the subject in \"{subject} is a\" (0: off).") var klFactor: Float = 0.0625
    @Option(name: .long, help: "FT-L: Adam learning rate.") var lr: Float = 5e-4
    @Option(name: .long, help: "FT-L: L-infinity bound on the change of each weight (0: none).") var normBound: Float = 5e-4
    @Option(name: .long, help: "Seed (ROME and MEMIT context samples).") var seed: UInt64 = 0
    @Option(name: .long, help: "MEMIT: comma-separated layers (default: the ROME layer and the two below it).") var layers: String?
    @Option(name: .long, help: "MEMIT: λ, weight of the preserved keys (mom2_update_weight; default: GPT-J's 15000 per 16384 key dimensions, 15000·I/16384, 1406 for SmolLM2-135M).") var updateWeight: Double?
    @Option(name: .long, help: "MEMIT: weight of the bare prompt's key in each fact's key, the context prompts sharing the rest (MEMIT's code: 0.5; 1/(contexts+1) is a plain mean).") var bareKeyWeight: Double = 0.5

    /// Inputs read besides the model (for the output-folder check).
    var inputs: [String] { [editor, statsCorpus].compactMap { $0 } }

    /// The --stats-cache folder (key statistics, MEMIT's value vectors) is never inside an input.
    func checkCache(inputs models: [String]) throws {
        try OutputFolder.checkCacheFolder(Editors.statsDirectory(self), inputs: models + inputs, option: "--stats-cache")
    }
}

/// The editors for one model, built once from `EditorOptions`: key statistics collected (or read
/// from the cache) for the layers the chosen methods need, the MEND editor loaded.
final class Editors {
    let options: EditorOptions
    let model: TransformerModel
    let tokenizer: BPETokenizer
    let layer: Int
    let memitLayers: [Int]
    private(set) var statistics: [Int: KeyStatistics] = [:]
    let mend: MendEditor?
    /// What was set up (one line per note), for the command's output.
    private(set) var notes = ""
    /// What the last `edits` call did (losses, subject), for a single edit's report.
    private(set) var lastDetail = ""
    /// The key statistics cache, which also keeps MEMIT's value vectors (`MemitSettings.valueCache`).
    var statsDirectory: URL { Self.statsDirectory(options) }
    static func statsDirectory(_ o: EditorOptions) -> URL {
        o.statsCache.map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/weightsmith")
    }

    init(options o: EditorOptions, model: TransformerModel, tokenizer: BPETokenizer, methods: [EditMethod], memitProgress: ProgressLine? = nil) throws {
        options = o; self.model = model; self.tokenizer = tokenizer
        let L = model.config.layers
        layer = o.layer ?? min(L - 1, L * 5 / 32)
        guard (0..<L).contains(layer) else { throw ValidationError("--layer \(layer) is outside 0..<\(L) (the model has \(L) layers)") }
        memitLayers = try o.layers.map { s in
            try s.split(separator: ",").map {
                guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--layers \(s): \"\($0)\" is not a layer number") }
                return v
            }
        } ?? Array(max(0, layer - 2)...layer)
        if methods.contains(.mend) {
            guard let e = o.editor else { throw ValidationError("--method mend needs --editor EDITOR (a MEND editor trained by weightsmith train-editor)") }
            mend = try MendEditor.load(URL(fileURLWithPath: e))
        } else {
            mend = nil
        }
        if methods.contains(.memit) && o.statsCorpus == nil {
            throw ValidationError("--method memit needs --stats-corpus TEXT (the key covariance of each edited layer)")
        }
        var wanted: [Int] = []
        if methods.contains(.rome) && o.statsCorpus != nil { wanted.append(layer) }
        if methods.contains(.memit) { wanted += memitLayers }
        if let corpus = o.statsCorpus, !wanted.isEmpty {
            let text: String
            do { text = try String(contentsOfFile: corpus, encoding: .utf8) } catch {
                throw ValidationError("cannot read --stats-corpus \(corpus): " + (FileManager.default.fileExists(atPath: corpus) ? "not UTF-8 text" : "no such file"))
            }
            let lines = text.split(separator: "\n").map(String.init)
            let dir = Self.statsDirectory(o)
            let chosen = Set(wanted).sorted()
            for l in chosen {
                let ts = Date()
                let (stats, cached) = try KeyStatistics.cached(in: dir, model: model, tokenizer: tokenizer, texts: lines, layer: l, maxTokens: o.statsTokens)
                statistics[l] = stats
                notes += String(format: "key statistics%@: %d tokens, %@ (%.1f s)\n", chosen.count == 1 ? "" : " of layer \(l)", stats.tokens, cached ? "from cache" : "collected and cached", Date().timeIntervalSince(ts))
            }
        } else if methods.contains(.rome) {
            // Measured on SmolLM2-135M (France -> Rome, layer 4): with C = I "The capital of
            // Germany is" also answered Rome; with statistics from a 20k-token corpus it kept Berlin.
            notes += "key statistics: none (C = I); the edit may spread to other subjects, --stats-corpus TEXT makes it specific\n"
        }
        self.memitProgress = memitProgress
    }

    private let memitProgress: ProgressLine?

    var romeSettings: RomeSettings {
        var s = RomeSettings(layer: layer)
        s.contextTemplates = options.contexts; s.seed = options.seed; s.statistics = statistics[layer]
        s.learningRate = options.valueLr; s.clampNorm = options.clampNorm ?? 4; s.klFactor = options.klFactor
        if let st = options.steps { s.steps = st }
        return s
    }

    var fineTuneSettings: FineTuneSettings {
        FineTuneSettings(layer: layer, steps: options.steps ?? 25, learningRate: options.lr, normBound: options.normBound > 0 ? options.normBound : nil)
    }

    var memitSettings: MemitSettings {
        var ms = MemitSettings(layers: memitLayers)
        ms.updateWeight = options.updateWeight; ms.seed = options.seed; ms.contextTemplates = options.contexts; ms.klFactor = options.klFactor
        if let st = options.steps { ms.steps = st }
        if let c = options.clampNorm { ms.clampNorm = c }
        ms.bareKeyWeight = options.bareKeyWeight
        ms.learningRate = options.valueLr
        for l in memitLayers { ms.statistics[l] = statistics[l] }
        ms.valueCache = statsDirectory
        return ms
    }

    /// The weight edits of `method` for one request on the model as it is now (not applied).
    func edits(_ method: EditMethod, _ request: EditRequest) throws -> [WeightEdit] {
        switch method {
        case .rome:
            let r = try RomeEditor.edit(model: model, tokenizer: tokenizer, request: request, settings: romeSettings)
            lastDetail = "subject \"\(try request.keySubject())\", key at token \(r.subjectToken); value loss \(fmt(r.losses.first)) -> \(fmt(r.losses.last)) in \(r.losses.count) steps\n"
                + "essence: KL(before || after) at the subject in \"\(r.essencePrompt)\" = \(fmt(r.essenceKL))\n"
            return [r.edit]
        case .ft:
            let r = try FineTuneEditor.edit(model: model, tokenizer: tokenizer, request: request, settings: fineTuneSettings)
            lastDetail = "loss \(fmt(r.losses.first)) -> \(fmt(r.losses.last)) in \(r.losses.count) steps\n"
            return [r.edit]
        case .mend:
            lastDetail = ""
            return try mend!.edits(for: request, model: model, tokenizer: tokenizer)
        case .memit:
            return try memitBatch([request])
        }
    }

    /// One MEMIT edit of all `requests` at once (not applied).
    func memitBatch(_ requests: [EditRequest]) throws -> [WeightEdit] {
        memitProgress?.restart()
        let r = try MemitEditor.edit(model: model, tokenizer: tokenizer, requests: requests, settings: memitSettings) { [memitProgress] in
            memitProgress?.step($0, $1)
        }
        let first = r.valueLosses.map(\.0).reduce(0, +) / Double(max(r.valueLosses.count, 1))
        let last = r.valueLosses.map(\.1).reduce(0, +) / Double(max(r.valueLosses.count, 1))
        // The share of the wanted residual change at the last layer that the update delivers,
        // ⟨achieved, wanted⟩ / ‖wanted‖² per fact (1: all of it; MEMIT's λ trades it for locality).
        let reached = zip(r.achieved, r.offsets).map { a, w -> Double in
            let ww = w.reduce(0.0) { $0 + Double($1) * Double($1) }
            return ww > 0 ? zip(a, w).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } / ww : 1
        }
        let mean = reached.reduce(0, +) / Double(max(reached.count, 1))
        lastDetail = "layers \(memitLayers.map(String.init).joined(separator: ",")); mean value loss \(fmt(first)) -> \(fmt(last)); "
            + "residual change reached \(String(format: "%.2f", mean)) of the wanted (min \(String(format: "%.2f", reached.min() ?? 0)); λ = \(String(format: "%g", memitSettings.effectiveUpdateWeight(intermediateSize: model.config.intermediateSize))))\n"
        return r.edits
    }

    func fmt(_ x: Double?) -> String { x.map { String(format: "%.4f", $0) } ?? "-" }
}

extension MendEditLossPrompts: ExpressibleByArgument {}
extension MendSelection: ExpressibleByArgument {}
