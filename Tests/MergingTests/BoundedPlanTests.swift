import Foundation
import XCTest
@testable import Merging

extension MergeEndToEndTests {
    /// Issue 13, item 9: a layer range far beyond the model's layers was planned job by job
    /// (out of memory even with --dry-run); now the plan fails at once, naming the range.
    func testLayerRangeBeyondTheModelFailsAtOnce() throws {
        let a = try makeModel("a", offset: 1, layers: 2)
        let t0 = Date()
        XCTAssertThrowsError(try MergePlanner.plan(recipe("""
            merge_method: passthrough
            slices:
              - sources:
                  - model: \(a)
                    layer_range: [0, 1000000000]
            """))) { e in
            XCTAssertTrue("\(e)".contains("layer_range [0, 1000000000) exceeds its 2 layers"), "\(e)")
        }
        XCTAssertLessThan(Date().timeIntervalSince(t0), 5)
    }
}
