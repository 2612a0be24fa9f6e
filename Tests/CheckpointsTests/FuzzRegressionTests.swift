import Checkpoints
import Foundation
import XCTest

/// Inputs the libFuzzer harnesses (Fuzz/, `scripts/fuzz.sh`) found crashing, each now a typed
/// error. The same bytes are in the harness's corpus (Fuzz/Corpus/NAME/regression-*).
final class FuzzRegressionTests: XCTestCase {
    /// GGUF v3, no tensors, `general.alignment` stored as int8 -51: the error converted the
    /// negative value to UInt64 and trapped.
    func testNegativeGGUFAlignmentIsATypedError() throws {
        var bytes: [UInt8] = Array("GGUF".utf8) + [3, 0, 0, 0] + [UInt8](repeating: 0, count: 8) + [1] + [UInt8](repeating: 0, count: 7)
        bytes += [17, 0, 0, 0, 0, 0, 0, 0] + Array("general.alignment".utf8) + [1, 0, 0, 0] + [0xCD]
        bytes += [3, 0, 0, 0]
        XCTAssertThrowsError(try bytes.withUnsafeBytes { try GGUFFile.validate($0) }) { e in
            guard case .invalidAlignment(_, "-51") = e as? GGUFError else { return XCTFail("\(e)") }
        }
        // A string alignment is quoted, not reported as 0.
        var text: [UInt8] = Array("GGUF".utf8) + [3, 0, 0, 0] + [UInt8](repeating: 0, count: 8) + [1] + [UInt8](repeating: 0, count: 7)
        text += [17, 0, 0, 0, 0, 0, 0, 0] + Array("general.alignment".utf8) + [8, 0, 0, 0] + [2, 0, 0, 0, 0, 0, 0, 0] + Array("32".utf8)
        XCTAssertThrowsError(try text.withUnsafeBytes { try GGUFFile.validate($0) }) { e in
            XCTAssertTrue("\(e)".contains("general.alignment is \"32\""), "\(e)")
        }
    }
}
