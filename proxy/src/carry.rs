//! Types of your own in generated signatures.

use std::borrow::Cow;

/// A Rust type carried on the wire as a type the mapping already knows:
/// a hash as `Data`, an amount as `Int64`, a transaction serialised into
/// `Data`. Implement it once; then name the type for a field, parameter or
/// result in the build (`Builder::carry("Tx.txid", "[u8; 32]")`) and the
/// generated signatures use it.
///
/// This is what libmultiprocess's `CustomBuildField` / `CustomReadField`
/// overloads do for C++ types.
///
/// ```
/// use std::borrow::Cow;
/// use multiprocess_proxy::Carry;
///
/// /// A block hash, carried as 32 bytes of `Data`.
/// #[derive(Debug, PartialEq)]
/// struct BlockHash([u8; 32]);
///
/// impl Carry for BlockHash {
///     type Wire = [u8];
///     fn to_wire(&self) -> Cow<'_, [u8]> {
///         Cow::Borrowed(&self.0)
///     }
///     fn from_wire(wire: &[u8]) -> Result<Self, String> {
///         <[u8; 32]>::from_wire(wire).map(BlockHash)
///     }
/// }
///
/// assert!(BlockHash::from_wire(&[0; 31]).is_err());
/// ```
pub trait Carry: Sized {
    /// The wire form: `[u8]` for `Data`, `str` for `Text`, a primitive for
    /// a number.
    type Wire: ?Sized + ToOwned;

    /// The value in its wire form, borrowed where it can be.
    fn to_wire(&self) -> Cow<'_, Self::Wire>;

    /// The value the peer sent, or why it does not fit (the call then fails
    /// with a protocol error naming the field, and the connection carries
    /// on).
    fn from_wire(wire: &Self::Wire) -> Result<Self, String>;
}

/// A fixed-size byte array (a hash) carried as `Data` of exactly that length.
impl<const N: usize> Carry for [u8; N] {
    type Wire = [u8];

    fn to_wire(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(self)
    }

    fn from_wire(wire: &[u8]) -> Result<Self, String> {
        <[u8; N]>::try_from(wire).map_err(|_| format!("expected {N} bytes, got {}", wire.len()))
    }
}
