// Token (and learned position) embedding.
//
// tokens: (N) ids in 0..<V, table: (V, C)  ->  out: (N, C)
// Backward (next issue) scatters dOut rows into dTable[tokens[n]] with +=.

/// out[n, :] = table[tokens[n], :]. Precondition: ids in range (checked by the model).
func embeddingForward(out: UnsafeMutablePointer<Float>, tokens: [Int32], table: UnsafePointer<Float>, C: Int) {
    for (n, t) in tokens.enumerated() {
        (out + n * C).update(from: table + Int(t) * C, count: C)
    }
}

/// out[n, :] += positionTable[positions[n], :] (GPT-2 learned positions).
func positionEmbeddingForward(out: UnsafeMutablePointer<Float>, positions: [Int32], table: UnsafePointer<Float>, C: Int) {
    for (n, p) in positions.enumerated() {
        let o = out + n * C, row = table + Int(p) * C
        for c in 0..<C { o[c] += row[c] }
    }
}

// Backward: dTable (V, C) += scatter of dOut (N, C) rows by token id.

/// dTable[tokens[n], :] += dOut[n, :].
func embeddingBackward(dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, tokens: [Int32], C: Int) {
    for (n, t) in tokens.enumerated() {
        let d = dTable + Int(t) * C, g = dOut + n * C
        for c in 0..<C { d[c] += g[c] }
    }
}

/// dPositionTable[positions[n], :] += dOut[n, :].
func positionEmbeddingBackward(dTable: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>, positions: [Int32], C: Int) {
    embeddingBackward(dTable: dTable, dOut: dOut, tokens: positions, C: C)
}
