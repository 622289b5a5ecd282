//! The type mapping: capnp types to Rust types, and the code that writes a
//! Rust value into a message and reads it back.

use capnp::schema_capnp::{node, type_};

use crate::model::{NodeName, Schema, snake};

/// A capnp type, as the mapping sees it.
#[derive(Debug, Clone)]
pub(crate) enum Ty {
    Void,
    /// A number or `Bool`: its Rust type.
    Prim(&'static str),
    Text,
    Data,
    Enum(NodeName),
    Struct(NodeName),
    List(Box<Ty>),
    Interface(NodeName),
    /// An interface with one `call` method, wrapped as a `std::function`:
    /// a Rust closure.
    Closure(NodeName),
}

/// A field that is `Option<T>`: `x` with a `hasX :Bool` beside it.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    /// The Rust name.
    pub(crate) name: String,
    /// capnpc's accessor stem (`get_{stem}`, `set_{stem}`).
    pub(crate) accessor: String,
    pub(crate) ty: Ty,
    /// capnpc's accessor stem of the `hasX` field, for an `Option`.
    pub(crate) has: Option<String>,
}

impl Ty {
    pub(crate) fn from_capnp(
        schema: &Schema<'_>,
        ty: type_::Reader<'_>,
        closures: &[u64],
    ) -> capnp::Result<Ty> {
        Ok(match ty.which()? {
            type_::Void(()) => Ty::Void,
            type_::Bool(()) => Ty::Prim("bool"),
            type_::Int8(()) => Ty::Prim("i8"),
            type_::Int16(()) => Ty::Prim("i16"),
            type_::Int32(()) => Ty::Prim("i32"),
            type_::Int64(()) => Ty::Prim("i64"),
            type_::Uint8(()) => Ty::Prim("u8"),
            type_::Uint16(()) => Ty::Prim("u16"),
            type_::Uint32(()) => Ty::Prim("u32"),
            type_::Uint64(()) => Ty::Prim("u64"),
            type_::Float32(()) => Ty::Prim("f32"),
            type_::Float64(()) => Ty::Prim("f64"),
            type_::Text(()) => Ty::Text,
            type_::Data(()) => Ty::Data,
            type_::List(list) => Ty::List(Box::new(Ty::from_capnp(
                schema,
                list.get_element_type()?,
                closures,
            )?)),
            type_::Enum(e) => Ty::Enum(schema.name(e.get_type_id())?.clone()),
            type_::Struct(s) => {
                let node = schema.node(s.get_type_id())?;
                if let node::Struct(st) = node.which()? {
                    if st.get_is_group() {
                        return Err(unsupported("a group"));
                    }
                }
                if node.get_is_generic() {
                    return Err(unsupported(&format!(
                        "the generic struct {}",
                        schema.name(s.get_type_id())?.display
                    )));
                }
                Ty::Struct(schema.name(s.get_type_id())?.clone())
            }
            type_::Interface(i) => {
                let name = schema.name(i.get_type_id())?.clone();
                if closures.contains(&i.get_type_id()) {
                    Ty::Closure(name)
                } else {
                    Ty::Interface(name)
                }
            }
            type_::AnyPointer(_) => return Err(unsupported("AnyPointer")),
        })
    }

    /// Whether writing or reading it needs the connection (to serve or
    /// adopt a capability).
    pub(crate) fn needs_ctx(&self) -> bool {
        match self {
            Ty::Interface(_) | Ty::Closure(_) => true,
            Ty::List(inner) => inner.needs_ctx(),
            _ => false,
        }
    }

    /// The owned Rust type: what results and struct fields hold.
    pub(crate) fn owned(&self, rt: &str) -> String {
        let _ = rt;
        match self {
            Ty::Void => "()".into(),
            Ty::Prim(p) => (*p).into(),
            Ty::Text => "String".into(),
            Ty::Data => "Vec<u8>".into(),
            Ty::Enum(n) => n.capnp.clone(),
            Ty::Struct(n) => format!("{}::{}", n.proxy_mod, n.rust),
            Ty::List(inner) => format!("Vec<{}>", inner.owned(rt)),
            Ty::Interface(n) => format!("::std::sync::Arc<dyn {}::{}>", n.proxy_mod, n.rust),
            Ty::Closure(n) => format!("{}::{}", n.proxy_mod, n.rust),
        }
    }

    /// The parameter type: borrowed where the owned type has a heap part.
    pub(crate) fn param(&self, rt: &str) -> String {
        match self {
            Ty::Text => "&str".into(),
            Ty::Data => "&[u8]".into(),
            Ty::List(inner) => format!("&[{}]", inner.owned(rt)),
            Ty::Struct(n) => format!("&{}::{}", n.proxy_mod, n.rust),
            other => other.owned(rt),
        }
    }

    /// From a parameter variable to what the setters take.
    pub(crate) fn input_from_param(&self, var: &str) -> String {
        match self {
            Ty::Interface(_) | Ty::Closure(_) => format!("&{var}"),
            _ => var.to_string(),
        }
    }

    /// From an expression of type `&Owned` to what the setters take.
    pub(crate) fn input_from_ref(&self, expr: &str) -> String {
        match self {
            Ty::Void | Ty::Prim(_) | Ty::Enum(_) => format!("*{expr}"),
            Ty::Text => format!("{expr}.as_str()"),
            Ty::Data | Ty::List(_) => format!("{expr}.as_slice()"),
            Ty::Struct(_) | Ty::Interface(_) | Ty::Closure(_) => expr.to_string(),
        }
    }

    /// From an owned variable to the parameter an implementation takes.
    pub(crate) fn param_from_owned(&self, var: &str) -> String {
        match self {
            Ty::Text | Ty::Data | Ty::List(_) | Ty::Struct(_) => format!("&{var}"),
            _ => var.to_string(),
        }
    }

    /// From an owned `Option` variable to an `Option` parameter.
    pub(crate) fn option_param_from_owned(&self, var: &str) -> String {
        match self {
            Ty::Text | Ty::Data | Ty::List(_) => format!("{var}.as_deref()"),
            Ty::Struct(_) => format!("{var}.as_ref()"),
            _ => var.to_string(),
        }
    }
}

fn unsupported(what: &str) -> capnp::Error {
    capnp::Error::failed(format!(
        "{what} is not supported by the proxy generator yet"
    ))
}

/// Writes Rust code; `rt` is the runtime crate's path.
pub(crate) struct Emit<'r> {
    pub(crate) rt: &'r str,
}

impl Emit<'_> {
    fn private(&self) -> String {
        format!("{}::__private", self.rt)
    }

    /// Statements that set field `accessor` of builder `b` from `input`.
    pub(crate) fn set(
        &self,
        ty: &Ty,
        b: &str,
        accessor: &str,
        input: &str,
        depth: usize,
    ) -> String {
        let p = self.private();
        match ty {
            Ty::Void => String::new(),
            Ty::Prim(_) | Ty::Enum(_) | Ty::Text | Ty::Data => {
                format!("{b}.set_{accessor}({input});\n")
            }
            Ty::Struct(_) => {
                format!("{p}::Wire::write({input}, {b}.reborrow().init_{accessor}())?;\n")
            }
            Ty::List(inner) => {
                let (list, i, item) = (
                    format!("list{depth}"),
                    format!("i{depth}"),
                    format!("item{depth}"),
                );
                format!(
                    "{{\n let items = {input};\n let mut {list} = {b}.reborrow().init_{accessor}({p}::list_len(items.len())?);\n \
                     for ({i}, {item}) in items.iter().enumerate() {{\n let {i} = {i} as u32;\n {}}}\n}}\n",
                    self.set_elem(inner, &list, &i, &inner.input_from_ref(&item), depth + 1)
                )
            }
            Ty::Interface(n) => format!(
                "{b}.set_{accessor}(<dyn {}::{} as {}::Interface>::to_capnp({input}, &ctx));\n",
                n.proxy_mod, n.rust, self.rt
            ),
            Ty::Closure(n) => format!(
                "{b}.set_{accessor}({}::__{}_to_capnp({input}, &ctx));\n",
                n.proxy_mod,
                snake(&n.rust)
            ),
        }
    }

    fn set_elem(&self, ty: &Ty, list: &str, i: &str, input: &str, depth: usize) -> String {
        let p = self.private();
        match ty {
            Ty::Void => String::new(),
            Ty::Prim(_) | Ty::Enum(_) | Ty::Text | Ty::Data => {
                format!("{list}.set({i}, {input});\n")
            }
            Ty::Struct(_) => format!("{p}::Wire::write({input}, {list}.reborrow().get({i}))?;\n"),
            Ty::List(inner) => {
                let (sub, j, item) = (
                    format!("list{depth}"),
                    format!("i{depth}"),
                    format!("item{depth}"),
                );
                format!(
                    "{{\n let items = {input};\n let mut {sub} = {list}.reborrow().init({i}, {p}::list_len(items.len())?);\n \
                     for ({j}, {item}) in items.iter().enumerate() {{\n let {j} = {j} as u32;\n {}}}\n}}\n",
                    self.set_elem(inner, &sub, &j, &inner.input_from_ref(&item), depth + 1)
                )
            }
            Ty::Interface(n) => format!(
                "{list}.set({i}, {p}::capnp::capability::FromClientHook::into_client_hook(<dyn {}::{} as {}::Interface>::to_capnp({input}, &ctx)));\n",
                n.proxy_mod, n.rust, self.rt
            ),
            Ty::Closure(n) => format!(
                "{list}.set({i}, {p}::capnp::capability::FromClientHook::into_client_hook({}::__{}_to_capnp({input}, &ctx)));\n",
                n.proxy_mod,
                snake(&n.rust)
            ),
        }
    }

    /// An expression reading field `accessor` of reader `r` into its owned
    /// Rust type (`label` names it in errors).
    pub(crate) fn get(
        &self,
        ty: &Ty,
        r: &str,
        accessor: &str,
        label: &str,
        depth: usize,
    ) -> String {
        let p = self.private();
        match ty {
            Ty::Void => "()".into(),
            Ty::Prim(_) => format!("{r}.get_{accessor}()"),
            Ty::Enum(_) => {
                format!("{r}.get_{accessor}().map_err(|e| {p}::bad_value({label:?}, e))?")
            }
            Ty::Text => format!(
                "{r}.get_{accessor}()?.to_string().map_err(|e| {p}::bad_value({label:?}, e))?"
            ),
            Ty::Data => format!("{r}.get_{accessor}()?.to_vec()"),
            Ty::Struct(n) => format!(
                "<{}::{} as {p}::Wire>::read({r}.get_{accessor}()?)?",
                n.proxy_mod, n.rust
            ),
            Ty::List(inner) => {
                let (list, i) = (format!("list{depth}"), format!("i{depth}"));
                format!(
                    "{{\n let {list} = {r}.get_{accessor}()?;\n let mut items = Vec::with_capacity({list}.len() as usize);\n \
                     for {i} in 0..{list}.len() {{\n items.push({});\n }}\n items\n }}",
                    self.get_elem(inner, &list, &i, &format!("{label}[]"), depth + 1)
                )
            }
            Ty::Interface(n) => format!(
                "<dyn {}::{} as {}::Interface>::from_capnp({r}.get_{accessor}()?, &ctx)?",
                n.proxy_mod, n.rust, self.rt
            ),
            Ty::Closure(n) => format!(
                "{}::__{}_from_capnp({r}.get_{accessor}()?, &ctx)?",
                n.proxy_mod,
                snake(&n.rust)
            ),
        }
    }

    fn get_elem(&self, ty: &Ty, list: &str, i: &str, label: &str, depth: usize) -> String {
        let p = self.private();
        match ty {
            Ty::Void => "()".into(),
            Ty::Prim(_) => format!("{list}.get({i})"),
            Ty::Enum(_) => format!("{list}.get({i}).map_err(|e| {p}::bad_value({label:?}, e))?"),
            Ty::Text => {
                format!("{list}.get({i})?.to_string().map_err(|e| {p}::bad_value({label:?}, e))?")
            }
            Ty::Data => format!("{list}.get({i})?.to_vec()"),
            Ty::Struct(n) => format!(
                "<{}::{} as {p}::Wire>::read({list}.get({i}))?",
                n.proxy_mod, n.rust
            ),
            Ty::List(inner) => {
                let (sub, j) = (format!("list{depth}"), format!("i{depth}"));
                format!(
                    "{{\n let {sub} = {list}.get({i})?;\n let mut items = Vec::with_capacity({sub}.len() as usize);\n \
                     for {j} in 0..{sub}.len() {{\n items.push({});\n }}\n items\n }}",
                    self.get_elem(inner, &sub, &j, &format!("{label}[]"), depth + 1)
                )
            }
            Ty::Interface(n) => format!(
                "<dyn {}::{} as {}::Interface>::from_capnp({list}.get({i})?, &ctx)?",
                n.proxy_mod, n.rust, self.rt
            ),
            Ty::Closure(n) => format!(
                "{}::__{}_from_capnp({list}.get({i})?, &ctx)?",
                n.proxy_mod,
                snake(&n.rust)
            ),
        }
    }

    /// Sets a slot (an `Option` or a plain field) from `input`, an
    /// expression of what the setters take (or, for an `Option`, an
    /// `Option` of it, bound as `value`).
    pub(crate) fn set_slot(
        &self,
        slot: &Slot,
        b: &str,
        input: &str,
        option_input: impl Fn(&str) -> String,
    ) -> String {
        match &slot.has {
            None => self.set(&slot.ty, b, &slot.accessor, input, 0),
            Some(has) => format!(
                "if let Some(value) = {input} {{\n {b}.set_{has}(true);\n {}}}\n",
                self.set(&slot.ty, b, &slot.accessor, &option_input("value"), 0)
            ),
        }
    }

    /// Reads a slot into its owned Rust type (an `Option` for a `hasX`).
    pub(crate) fn get_slot(&self, slot: &Slot, r: &str, label: &str) -> String {
        let value = self.get(&slot.ty, r, &slot.accessor, label, 0);
        match &slot.has {
            None => value,
            Some(has) => format!("if {r}.get_{has}() {{ Some({value}) }} else {{ None }}"),
        }
    }
}

/// The owned type of a slot.
pub(crate) fn slot_owned(slot: &Slot, rt: &str) -> String {
    match slot.has {
        None => slot.ty.owned(rt),
        Some(_) => format!("Option<{}>", slot.ty.owned(rt)),
    }
}

/// The parameter type of a slot.
pub(crate) fn slot_param(slot: &Slot, rt: &str) -> String {
    match slot.has {
        None => slot.ty.param(rt),
        Some(_) => format!("Option<{}>", slot.ty.param(rt)),
    }
}
