import XCTest
@testable import Merging
import Tensors

final class RecipeParserTests: XCTestCase {
    func testModelsFormWithFiltersAndGradients() throws {
        let r = try RecipeParser.parse("""
        merge_method: ties
        base_model: base
        models:
          - model: a
            parameters:
              weight: [{filter: self_attn, value: [0, 0.5, 1]}, {value: 0.25}]
              density: 0.5
          - model: b
            parameters: {weight: 1}
        parameters:
          lambda: 0.9
          normalize: false
        dtype: bfloat16
        out_dtype: float16
        tokenizer_source: base
        """)
        XCTAssertEqual(r.mergeMethod, "ties")
        XCTAssertEqual(r.baseModel, "base")
        XCTAssertEqual(r.models?.map(\.model), ["a", "b"])
        XCTAssertEqual(r.dtype, .bf16)
        XCTAssertEqual(r.outDType, .f16)
        XCTAssertEqual(r.parameters["normalize"], .value(.bool(false)))
        let w = try XCTUnwrap(r.models?[0].parameters["weight"])
        XCTAssertEqual(w.evaluate(tensor: "model.layers.3.self_attn.q_proj.weight", t: 0.25), .number(0.25))
        XCTAssertEqual(w.evaluate(tensor: "model.layers.3.self_attn.q_proj.weight", t: 0.75), .number(0.75))
        XCTAssertEqual(w.evaluate(tensor: "model.layers.3.mlp.up_proj.weight", t: 0.75), .number(0.25))
    }

    func testGradientInterpolation() {
        let g = ParameterSetting.gradient([0, 0.5, 0.3, 0.7, 1])
        // s = t·4: t = 0.3 → s = 1.2 → 0.8·0.5 + 0.2·0.3
        XCTAssertEqual(g.evaluate(tensor: "x", t: 0.3), .number(0.8 * 0.5 + 0.2 * 0.3))
        XCTAssertEqual(g.evaluate(tensor: "x", t: 0), .number(0))
        XCTAssertEqual(g.evaluate(tensor: "x", t: 1), .number(1))
        let c = ParameterSetting.conditional([(filter: "mlp", value: .value(.number(2)))])
        XCTAssertNil(c.evaluate(tensor: "self_attn", t: 0))
    }

    func testSlices() throws {
        let r = try RecipeParser.parse("""
        merge_method: passthrough
        slices:
          - sources:
              - model: a
                layer_range: [0, 2]
          - sources:
              - model: b
                layer_range: [1, 3]
        """)
        XCTAssertEqual(r.slices?.count, 2)
        XCTAssertEqual(r.slices?[1].sources[0].layerRange, 1..<3)
    }

    func assertRecipeError(_ yaml: String, line: Int?, key: String, contains: String, file: StaticString = #filePath, lineNo: UInt = #line) {
        XCTAssertThrowsError(try RecipeParser.parse(yaml, file: "r.yml"), file: file, line: lineNo) { e in
            guard let e = e as? RecipeError else { return XCTFail("wrong error \(e)", file: file, line: lineNo) }
            XCTAssertEqual(e.line, line, "\(e)", file: file, line: lineNo)
            XCTAssertEqual(e.key, key, "\(e)", file: file, line: lineNo)
            XCTAssertTrue(e.description.contains(contains), "\(e)", file: file, line: lineNo)
        }
    }

    /// Found by the recipe fuzzer: nested explicit mapping keys (`? `) made YAML composition take
    /// minutes for 1,463 bytes. They are refused first, with the line, in bounded time; a block
    /// scalar whose text has a line starting with "? " is still a plain value.
    func testExplicitMappingKeysAreRefusedBeforeComposing() throws {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/recipe-nested-explicit-keys", withExtension: "yml"))
        let text = try String(contentsOf: url, encoding: .utf8)
        let start = Date()
        XCTAssertThrowsError(try MultiRecipe.parse(text)) { e in
            XCTAssertEqual((e as? RecipeError)?.line, 3, "\(e)")
            XCTAssertTrue("\(e)".contains("explicit mapping keys"), "\(e)")
        }
        XCTAssertThrowsError(try RecipeParser.parse("merge_method: linear\nmodels:\n  - ? model\n    : a\n")) { e in
            XCTAssertEqual((e as? RecipeError)?.line, 3, "\(e)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(start), 5)
        let literal = "merge_method: linear\nmodels:\n  - model: a\n  - model: b\nchat_template: |\n  ? not a key\n  {{ messages }}\nparameters:\n  weight: 1\n"
        let r = try RecipeParser.parse(literal)
        XCTAssertEqual(r.chatTemplate, "? not a key\n{{ messages }}\n")
        // Flow-style explicit keys are not pre-scanned: composing them is linear in the depth (22
        // levels measured at 0.03 s per command), and the recipe fails on the value's type.
        for form in ["[? K]", "{? [K] : }", "[? {? K}]"] {
            var k = "a"
            for _ in 0..<22 { k = form.replacingOccurrences(of: "K", with: k) }
            assertRecipeError("merge_method: linear\nmodels:\n  - model: \(k)\n", line: 3, key: "models[0].model", contains: "non-empty string")
        }
    }

    func testErrorsNameKeyAndLine() {
        assertRecipeError("merge_method: tiess\nmodels: [a]\n", line: 1, key: "merge_method", contains: "unknown merge method")
        assertRecipeError("merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters:\n      desnity: 0.5\n",
                          line: 6, key: "models[0].parameters.desnity", contains: "no parameter \"desnity\"")
        assertRecipeError("merge_method: ties\nbase_model: b\nmodels:\n  - model: a\n    parameters:\n      weight: abc\n",
                          line: 6, key: "models[0].parameters.weight", contains: "expected a number")
        assertRecipeError("merge_method: linear\nmodels:\n  - model: a\n    parameters: {normalize: true}\n",
                          line: 4, key: "models[0].parameters.normalize", contains: "global parameter")
        assertRecipeError("merge_method: linear\nmodels: [a]\nslices: []\n", line: 1, key: "slices", contains: "not both")
        assertRecipeError("merge_method: linear\nmodels: [a]\ntokenizer_source: union\ntokenizer: {source: base}\n", line: 4, key: "tokenizer", contains: "not both")
        assertRecipeError("merge_method: linear\nmodels: [a]\nchat_template: [a]\n", line: 3, key: "chat_template", contains: "non-empty string")
        assertRecipeError("merge_method: linear\nmodel: [a]\n", line: 2, key: "model", contains: "unknown key")
        assertRecipeError("merge_method: linear\nmodels: [a]\ndtype: int8\n", line: 3, key: "dtype", contains: "floating-point")
        assertRecipeError("merge_method: slerp\nslices:\n  - sources:\n      - model: a\n        layer_range: [0, 2]\n      - model: b\n        layer_range: [0, 3]\n",
                          line: 3, key: "slices[0]", contains: "same number of layers")
        assertRecipeError("merge_method: linear\nmodels:\n  - model: a\n   parameters: {weight: 1}\n", line: 4, key: "", contains: "invalid YAML")
    }
}
