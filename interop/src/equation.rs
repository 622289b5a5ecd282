//! The arithmetic the Rust calculator does: `a+b`, `a-b` and `a*b` on 64-bit
//! integers, with optional signs and spaces (`-3 * 4`, `7 - -2`).

use std::fmt;

/// Why an equation could not be solved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EquationError {
    /// No `+`, `-` or `*` between two operands.
    NoOperator,
    /// An operand is not a 64-bit integer.
    BadOperand(String),
    /// The result does not fit in 64 bits.
    Overflow,
}

impl fmt::Display for EquationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EquationError::NoOperator => write!(f, "expected `a+b`, `a-b` or `a*b`"),
            EquationError::BadOperand(operand) => write!(f, "`{operand}` is not an integer"),
            EquationError::Overflow => write!(f, "the result does not fit in 64 bits"),
        }
    }
}

impl std::error::Error for EquationError {}

/// Solves `eqn`: two integers joined by `+`, `-` or `*`.
pub fn solve(eqn: &str) -> Result<i64, EquationError> {
    let eqn = eqn.trim();
    // The operator is the first `+`, `-` or `*` after the first operand has
    // started: a sign at the very start belongs to the first operand.
    let (at, op) = eqn
        .char_indices()
        .skip(1)
        .find(|(_, c)| matches!(c, '+' | '-' | '*'))
        .ok_or(EquationError::NoOperator)?;
    let operand = |text: &str| {
        let text = text.trim();
        text.parse::<i64>()
            .map_err(|_| EquationError::BadOperand(text.to_string()))
    };
    let a = operand(&eqn[..at])?;
    let b = operand(&eqn[at + op.len_utf8()..])?;
    match op {
        '+' => a.checked_add(b),
        '-' => a.checked_sub(b),
        _ => a.checked_mul(b),
    }
    .ok_or(EquationError::Overflow)
}

/// The line the Rust calculator sends its printer for `eqn`: `1+2 = 3`, or
/// `1/2: cannot solve: ...` when it cannot.
pub fn report(eqn: &str) -> String {
    let eqn = eqn.trim();
    match solve(eqn) {
        Ok(value) => format!("{eqn} = {value}"),
        Err(e) => format!("{eqn}: cannot solve: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solves_the_three_operations() {
        assert_eq!(solve("1+2"), Ok(3));
        assert_eq!(solve("3*4"), Ok(12));
        assert_eq!(solve("10-12"), Ok(-2));
        assert_eq!(solve(" -3 * 4 "), Ok(-12));
        assert_eq!(solve("7 - -2"), Ok(9));
        assert_eq!(solve("+5+5"), Ok(10));
    }

    #[test]
    fn refuses_what_it_cannot_do() {
        assert_eq!(solve("12"), Err(EquationError::NoOperator));
        assert_eq!(solve(""), Err(EquationError::NoOperator));
        assert_eq!(solve("1/2"), Err(EquationError::NoOperator));
        assert_eq!(solve("a+2"), Err(EquationError::BadOperand("a".into())));
        assert_eq!(solve("1+"), Err(EquationError::BadOperand("".into())));
        assert_eq!(solve("9223372036854775807+1"), Err(EquationError::Overflow));
    }

    #[test]
    fn reports_read_well() {
        assert_eq!(report(" 1+2 "), "1+2 = 3");
        assert_eq!(report("x*2"), "x*2: cannot solve: `x` is not an integer");
    }
}
