import Foundation
import XCTest
@testable import Merging
import Tensors

/// Every deterministic method against float64 numpy values from scripts/make_merge_expected.py.
final class MethodReferenceTests: XCTestCase {
    struct Case: Decodable {
        let name: String
        let method: String
        let shape: [Int]
        let base: [Float]?
        let models: [[Float]]
        let global: [String: JSONScalar]
        let perModel: [[String: JSONScalar]]
        let expected: [Double]
    }

    enum JSONScalar: Decodable {
        case number(Double), bool(Bool)
        init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let b = try? c.decode(Bool.self) { self = .bool(b) } else { self = .number(try c.decode(Double.self)) }
        }
        var value: ParameterValue {
            switch self {
            case let .number(x): return .number(x)
            case let .bool(b): return .bool(b)
            }
        }
    }

    struct File: Decodable { let cases: [Case] }

    static func loadCases() throws -> [Case] {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "Fixtures/merge_expected", withExtension: "json"))
        return try JSONDecoder().decode(File.self, from: Data(contentsOf: url)).cases
    }

    func testAllMethodsMatchNumpyReference() throws {
        let cases = try Self.loadCases()
        XCTAssertGreaterThanOrEqual(cases.count, 20)
        for c in cases {
            let method = try MergeMethodRegistry.method(named: c.method)
            let shape = Shape(c.shape)
            let params = ResolvedParameters(global: c.global.mapValues(\.value), perModel: c.perModel.map { $0.mapValues(\.value) })
            let out = try method.merge(base: c.base.map { Tensor(shape: shape, scalars: $0) },
                                       models: c.models.map { Tensor(shape: shape, scalars: $0) }, parameters: params)
            var worst = 0.0
            for (a, e) in zip(out.scalars, c.expected) {
                worst = max(worst, abs(Double(a) - e) / max(1, abs(e)))
            }
            XCTAssertLessThan(worst, 2e-6, "\(c.name): max relative error \(worst)")
        }
    }
}
