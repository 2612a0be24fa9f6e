/// `compose`'s expressions: a linear combination of named models, parsed by recursive descent.
///
/// Grammar (whitespace between tokens is ignored):
///
///     expression := sum END
///     sum        := product (("+" | "-") product)*
///     product    := unary (("*" | "/") unary)*
///     unary      := ("+" | "-") unary | primary
///     primary    := NUMBER | NAME | "(" sum ")"
///     NUMBER     := digits ["." digits] [("e" | "E") ["+" | "-"] digits]   (or "." digits ...)
///     NAME       := (letter | "_") (letter | digit | "_" | "-" before a letter or digit)*
///
/// So `-0.5*cap + prof`, `cap + 0.5 * (prof + cont)`, `(a - b)/2` and `2e-1*x*2` are valid; a
/// hyphen between letters or digits is part of a name (`ft-a`), so subtraction needs a space
/// or a non-letter after the minus (`ft - a`). The value must be linear in the models: a number
/// may scale a model or a parenthesised sum, not be added to one (`cap + 1`), two models cannot
/// be multiplied (`a * b`) and nothing can be divided by a model. A model named more than once
/// gets the sum of its coefficients (`a + 0.5*(a + b)` is `1.5*a + 0.5*b`). Errors are
/// `MergeError.invalidExpression` with the 0-based offset of the problem (shown as a column).
public enum CompositionExpression {
    public struct Term: Equatable, Sendable {
        public let coefficient: Double
        public let name: String
        /// Character offset of the name's first occurrence in the expression (for error messages).
        public let position: Int
    }

    /// Deeper nesting than this is refused (the parser recurses once per level).
    public static let maxDepth = 64

    /// The terms in order of first appearance, coefficients combined.
    public static func parse(_ text: String) throws -> [Term] {
        var p = Parser(text: text)
        p.skipSpace()
        guard !p.atEnd else { throw p.fail("empty expression; expected e.g. \"0.7*math + 0.5*code\"", at: 0) }
        let v = try p.sum(depth: 0)
        p.skipSpace()
        if !p.atEnd {
            throw p.fail(p.peek == ")" ? "unmatched \")\"" : "expected an operator (+, -, *, /) before \"\(p.peek!)\"")
        }
        guard case let .models(terms) = v.kind else {
            throw p.fail("the expression names no model; expected e.g. \"0.7*math + 0.5*code\"", at: v.position)
        }
        for t in terms where !t.coefficient.isFinite {
            throw p.fail("the coefficient of \"\(t.name)\" is not finite (\(t.coefficient))", at: t.position)
        }
        return terms
    }

    /// A parsed sub-expression: a number, or a linear combination of models.
    struct Value {
        enum Kind { case number(Double), models([Term]) }
        var kind: Kind
        /// Where the sub-expression starts (for errors about it).
        var position: Int

        func scaled(by c: Double) -> Value {
            switch kind {
            case let .number(x): return Value(kind: .number(x * c), position: position)
            case let .models(ts):
                return Value(kind: .models(ts.map { Term(coefficient: $0.coefficient * c, name: $0.name, position: $0.position) }), position: position)
            }
        }
    }

    struct Parser {
        let text: String
        let chars: [Character]
        var i = 0

        init(text: String) {
            self.text = text
            chars = Array(text)
        }

        var atEnd: Bool { i >= chars.count }
        var peek: Character? { atEnd ? nil : chars[i] }

        func fail(_ reason: String, at p: Int? = nil) -> MergeError {
            MergeError.invalidExpression(expression: text, position: p ?? i, reason: reason)
        }

        mutating func skipSpace() { while i < chars.count && chars[i].isWhitespace { i += 1 } }

        // sum := product (("+" | "-") product)*
        mutating func sum(depth: Int) throws -> Value {
            var acc = try product(depth: depth)
            while true {
                skipSpace()
                guard let c = peek, c == "+" || c == "-" else { return acc }
                i += 1
                let rhs = try product(depth: depth)
                acc = try add(acc, c == "-" ? rhs.scaled(by: -1) : rhs)
            }
        }

        // product := unary (("*" | "/") unary)*
        mutating func product(depth: Int) throws -> Value {
            var acc = try unary(depth: depth)
            while true {
                skipSpace()
                guard let c = peek, c == "*" || c == "/" else { return acc }
                i += 1
                let rhs = try unary(depth: depth)
                switch (acc.kind, rhs.kind) {
                case let (.number(a), .number(b)) where c == "*":
                    acc = Value(kind: .number(a * b), position: acc.position)
                case let (.models, .number(b)) where c == "*":
                    acc = acc.scaled(by: b)
                case let (.number(a), .models) where c == "*":
                    acc = Value(kind: rhs.scaled(by: a).kind, position: acc.position)
                case (.models, .models) where c == "*":
                    throw fail("a product of two models is not linear; a coefficient must be a number", at: rhs.position)
                case let (_, .number(b)):
                    guard b != 0 else { throw fail("division by zero", at: rhs.position) }
                    acc = Value(kind: acc.scaled(by: 1 / b).kind, position: acc.position)
                case (_, .models):
                    throw fail("cannot divide by a model; divide by a number", at: rhs.position)
                }
            }
        }

        // unary := ("+" | "-") unary | primary
        mutating func unary(depth: Int) throws -> Value {
            skipSpace()
            guard depth < CompositionExpression.maxDepth else { throw fail("the expression is nested too deeply (more than \(CompositionExpression.maxDepth) levels)") }
            if let c = peek, c == "+" || c == "-" {
                let start = i
                i += 1
                let v = try unary(depth: depth + 1)
                return Value(kind: (c == "-" ? v.scaled(by: -1) : v).kind, position: start)
            }
            return try primary(depth: depth)
        }

        // primary := NUMBER | NAME | "(" sum ")"
        mutating func primary(depth: Int) throws -> Value {
            skipSpace()
            let start = i
            guard let c = peek else { throw fail("expected a number, a model name or \"(\" at the end of the expression") }
            if c == "(" {
                i += 1
                let v = try sum(depth: depth + 1)
                skipSpace()
                guard peek == ")" else {
                    throw fail(atEnd ? "the \"(\" at column \(start + 1) is not closed; expected \")\"" : "expected \")\" or an operator before \"\(peek!)\"")
                }
                i += 1
                return Value(kind: v.kind, position: start)
            }
            if c.isNumber || c == "." {
                guard let x = number() else { throw fail("malformed number", at: start) }
                return Value(kind: .number(x), position: start)
            }
            if c.isLetter || c == "_" {
                while i < chars.count, chars[i].isLetter || chars[i].isNumber || chars[i] == "_"
                        || chars[i] == "-" && i + 1 < chars.count && (chars[i + 1].isLetter || chars[i + 1].isNumber) {
                    i += 1
                }
                return Value(kind: .models([Term(coefficient: 1, name: String(chars[start..<i]), position: start)]), position: start)
            }
            throw fail(c == ")" ? "expected a number, a model name or \"(\" before \")\"" : "expected a number, a model name or \"(\", found \"\(c)\"")
        }

        mutating func number() -> Double? {
            let start = i
            func digits() -> Int { let s = i; while i < chars.count, chars[i].isASCII, chars[i].isNumber { i += 1 }; return i - s }
            let whole = digits()
            var frac = 0
            if peek == "." { i += 1; frac = digits() }
            guard whole + frac > 0 else { i = start; return nil }
            // An exponent only when digits follow it ("2e-1"; "2e" then a name is not one).
            if let e = peek, e == "e" || e == "E" {
                let save = i
                i += 1
                if let s = peek, s == "+" || s == "-" { i += 1 }
                if digits() == 0 { i = save }
            }
            return Double(String(chars[start..<i]))
        }

        /// `a + b` for linear values; a bare number added to models is refused.
        func add(_ a: Value, _ b: Value) throws -> Value {
            switch (a.kind, b.kind) {
            case let (.number(x), .number(y)): return Value(kind: .number(x + y), position: a.position)
            case (.number, .models): throw fail("a number cannot be added to a model; did you mean a coefficient (NUMBER*NAME)?", at: a.position)
            case (.models, .number): throw fail("a number cannot be added to a model; did you mean a coefficient (NUMBER*NAME)?", at: b.position)
            case let (.models(x), .models(y)):
                var terms = x
                for t in y {
                    if let k = terms.firstIndex(where: { $0.name == t.name }) {
                        terms[k] = Term(coefficient: terms[k].coefficient + t.coefficient, name: t.name, position: terms[k].position)
                    } else {
                        terms.append(t)
                    }
                }
                return Value(kind: .models(terms), position: a.position)
            }
        }
    }
}
