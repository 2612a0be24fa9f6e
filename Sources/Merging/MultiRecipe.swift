import Foundation
import Yams

/// A multi-document recipe as mergekit-multi reads it: YAML documents separated by `---`, each
/// a recipe with an optional `name:`; a name can be used as a model (`model:` / `base_model:`)
/// in later documents, which then take that merge's output. At most one document has no name:
/// the final merge. Documents are run in dependency order (`documents` is already sorted).
public struct MultiRecipe: Sendable {
    public struct Document: Sendable {
        public var name: String?
        public var recipe: Recipe
        /// First line of the document in the file (1-based).
        public var line: Int
        /// Names of other documents this one takes as inputs.
        public var dependencies: [String]
    }

    public var documents: [Document]
    public var file: String

    /// More than a single plain recipe.
    public var isMulti: Bool { documents.count > 1 || documents.first?.name != nil }
    /// The document without a name, if any (the final merge).
    public var final: Document? { documents.first { $0.name == nil } }

    public static func parse(file path: String) throws -> MultiRecipe {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw RecipeError(file: path, line: nil, key: "", message: "cannot read the recipe file")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw RecipeError(file: path, line: nil, key: "", message: "the recipe is not UTF-8 text")
        }
        return try parse(text, file: path)
    }

    /// Splits `text` at lines that are exactly `---` (a YAML document start, trailing spaces allowed).
    static func split(_ text: String) -> [(text: String, line: Int)] {
        var docs: [(String, Int)] = []
        var current: [Substring] = [], start = 1, lineNo = 0
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            lineNo += 1
            if line.trimmingCharacters(in: .whitespaces) == "---" {
                docs.append((current.joined(separator: "\n"), start))
                current = []
                start = lineNo + 1
            } else {
                current.append(line)
            }
        }
        docs.append((current.joined(separator: "\n"), start))
        // Documents holding only comments or blank lines (e.g. before a leading ---) are not recipes.
        return docs.filter { d in
            d.0.split(separator: "\n").contains { l in let t = l.trimmingCharacters(in: .whitespaces); return !t.isEmpty && !t.hasPrefix("#") }
        }
    }

    public static func parse(_ text: String, file: String = "<recipe>") throws -> MultiRecipe {
        var docs: [Document] = []
        for (docText, line) in split(text) {
            // Line numbers in errors count from the top of the file.
            let padded = String(repeating: "\n", count: line - 1) + docText
            let (name, recipeText) = try extractName(padded, file: file)
            var recipe = try RecipeParser.parse(recipeText, file: file)
            recipe.text = docText.hasSuffix("\n") ? docText : docText + "\n"
            docs.append(Document(name: name, recipe: recipe, line: line, dependencies: []))
        }
        guard !docs.isEmpty else { throw RecipeError(file: file, line: nil, key: "", message: "the file holds no recipe") }
        if docs.count == 1 { return MultiRecipe(documents: docs, file: file) }
        var names: [String: Int] = [:]
        for d in docs {
            guard let n = d.name else { continue }
            if let first = names[n] {
                throw RecipeError(file: file, line: d.line, key: "name", message: "\"\(n)\" names two documents (lines \(first) and \(d.line))")
            }
            names[n] = d.line
        }
        let unnamed = docs.filter { $0.name == nil }
        if unnamed.count > 1 {
            throw RecipeError(file: file, line: unnamed[1].line, key: "name",
                              message: "only one document may lack a name (the final merge); documents at lines \(unnamed.map { String($0.line) }.joined(separator: ", ")) have none")
        }
        for i in docs.indices {
            docs[i].dependencies = docs[i].recipe.modelPaths.filter { names[$0] != nil }
            if let n = docs[i].name, docs[i].dependencies.contains(n) {
                throw RecipeError(file: file, line: docs[i].line, key: "models", message: "\"\(n)\" uses its own output as an input")
            }
        }
        // Dependency order (Kahn), keeping file order among independent documents.
        var ordered: [Document] = [], done = Set<String>(), rest = docs
        while !rest.isEmpty {
            guard let k = rest.firstIndex(where: { $0.dependencies.allSatisfy(done.contains) }) else {
                let cycle = rest.compactMap(\.name).joined(separator: ", ")
                throw RecipeError(file: file, line: rest[0].line, key: "models", message: "the documents \(cycle) depend on each other in a cycle")
            }
            let d = rest.remove(at: k)
            if let n = d.name { done.insert(n) }
            ordered.append(d)
        }
        if let f = ordered.firstIndex(where: { $0.name == nil }), f != ordered.count - 1 {
            // The final merge goes last; nothing may depend on it (it has no name).
            ordered.append(ordered.remove(at: f))
        }
        return MultiRecipe(documents: ordered, file: file)
    }

    /// The document's `name:` value and the text without that top-level key.
    static func extractName(_ text: String, file: String) throws -> (String?, String) {
        let node = try RecipeParser.compose(text, file: file)
        guard let map = node?.mapping, let (k, v) = map.first(where: { $0.key.string == "name" }) else { return (nil, text) }
        guard let name = v.scalar?.string, !name.isEmpty, !name.contains("/") else {
            throw RecipeError(file: file, line: k.mark?.line, key: "name", message: "expected a non-empty name without \"/\"")
        }
        // Drop the `name:` line (a top-level key on one line: `name: value`).
        guard let line = k.mark?.line else { return (name, text) }
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard line - 1 < lines.count, lines[line - 1].hasPrefix("name:") else {
            throw RecipeError(file: file, line: line, key: "name", message: "write name: NAME on its own line at the top level")
        }
        lines[line - 1] = ""
        return (name, lines.joined(separator: "\n"))
    }

    /// `recipe` with every document name used as a model replaced by that merge's output folder.
    public static func substituting(_ recipe: Recipe, _ outputs: [String: String]) -> Recipe {
        var r = recipe
        func sub(_ p: String) -> String { outputs[p] ?? p }
        r.baseModel = r.baseModel.map(sub)
        r.models = r.models?.map { var m = $0; m.model = sub(m.model); return m }
        r.slices = r.slices?.map { s in
            var s = s
            s.baseModel = s.baseModel.map(sub)
            s.sources = s.sources.map { var src = $0; src.model = sub(src.model); return src }
            return s
        }
        if let t = r.tokenizerSource { r.tokenizerSource = sub(t) }
        r.tokenEmbeddings = r.tokenEmbeddings.map { e in
            var e = e
            switch e.source {
            case let .model(m)?: e.source = .model(sub(m))
            case let .modelToken(m, t, id)?: e.source = .modelToken(model: sub(m), token: t, tokenID: id)
            default: break
            }
            return e
        }
        return r
    }
}
