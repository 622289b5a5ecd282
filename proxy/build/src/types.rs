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
    /// A generic struct with its type arguments (`Pair(Text, Text)`).
    Generic(NodeName, Vec<Ty>),
    /// A generic struct's type parameter, inside its own definition.
    Param(String),
    /// A generic argument left unbound (its struct's fields do not use it).
    Unbound,
    /// A Rust type of the user's (`Builder::carry`), carried as the wire
    /// type it implements `Carry` for.
    Carried(String, Box<Ty>),
    /// A `List` of (key, value) structs as a `BTreeMap` (`Builder::map`):
    /// the entry struct's two slots.
    Map(Box<(Slot, Slot)>),
    /// A struct field whose struct contains, directly or not, the struct
    /// holding the field: `Option<Box<S>>` (a null pointer is `None`), so
    /// the Rust type is finite and reading ends.
    Boxed(Box<Ty>),
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
    /// The field's name in the schema.
    pub(crate) wire: String,
    /// capnpc's accessor stem (`get_{stem}`, `set_{stem}`).
    pub(crate) accessor: String,
    pub(crate) ty: Ty,
    /// capnpc's accessor stem of the `hasX` field, for an `Option`.
    pub(crate) has: Option<String>,
    /// Whether the field's declared type is a generic parameter (capnpc's
    /// setters then return a `Result`, and lists are made with `initn_`).
    pub(crate) generic: bool,
}

/// The marker `Builder::map` leaves among the carried types.
pub(crate) const MAP: &str = "@map";

/// The type arguments in scope, by (generic node id, parameter index).
pub(crate) type Bindings = Vec<((u64, u16), Ty)>;

impl Ty {
    pub(crate) fn from_capnp(
        schema: &Schema<'_>,
        ty: type_::Reader<'_>,
        closures: &[u64],
        bindings: &Bindings,
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
                bindings,
            )?)),
            type_::Enum(e) => Ty::Enum(schema.name(e.get_type_id())?.clone()),
            type_::Struct(s) => {
                let node = schema.node(s.get_type_id())?;
                if let node::Struct(st) = node.which()? {
                    if st.get_is_group() {
                        return Err(unsupported("a group"));
                    }
                }
                let name = schema.name(s.get_type_id())?.clone();
                if !node.get_is_generic() {
                    return Ok(Ty::Struct(name));
                }
                // The brand binds the struct's parameters: to types, or (in
                // a generic struct's own fields) to the parameters in scope.
                let mut args = Vec::new();
                for scope in s.get_brand()?.get_scopes()? {
                    if scope.get_scope_id() != s.get_type_id() {
                        continue;
                    }
                    match scope.which()? {
                        capnp::schema_capnp::brand::scope::Bind(binds) => {
                            for bind in binds? {
                                match bind.which()? {
                                    capnp::schema_capnp::brand::binding::Type(t) => {
                                        args.push(Ty::from_capnp(schema, t?, closures, bindings)?)
                                    }
                                    capnp::schema_capnp::brand::binding::Unbound(()) => {
                                        return Err(unsupported(&format!(
                                            "{} with an unbound parameter",
                                            name.display
                                        )));
                                    }
                                }
                            }
                        }
                        capnp::schema_capnp::brand::scope::Inherit(()) => {
                            return Err(unsupported(&format!(
                                "{} inheriting its parameters",
                                name.display
                            )));
                        }
                    }
                }
                let expected = node.get_parameters()?.len() as usize;
                if args.is_empty() {
                    // No bindings: every parameter unbound, which only a
                    // parameter no field uses may be.
                    args = vec![Ty::Unbound; expected];
                }
                let unbound_but_used = args
                    .iter()
                    .zip(&name.used_params)
                    .any(|(a, used)| *used && matches!(a, Ty::Unbound));
                if args.len() != expected || unbound_but_used {
                    return Err(unsupported(&format!(
                        "{} without its {expected} type arguments",
                        name.display
                    )));
                }
                Ty::Generic(name, args)
            }
            type_::Interface(i) => {
                let name = schema.name(i.get_type_id())?.clone();
                if closures.contains(&i.get_type_id()) {
                    Ty::Closure(name)
                } else {
                    Ty::Interface(name)
                }
            }
            type_::AnyPointer(any) => match any.which()? {
                type_::any_pointer::Parameter(param) => {
                    let key = (param.get_scope_id(), param.get_parameter_index());
                    match bindings.iter().find(|(k, _)| *k == key) {
                        Some((_, ty)) => ty.clone(),
                        None => {
                            let node = schema.node(key.0)?;
                            let params = node.get_parameters()?;
                            if u32::from(key.1) >= params.len() {
                                return Err(unsupported("a parameter out of range"));
                            }
                            Ty::Param(params.get(u32::from(key.1)).get_name()?.to_string()?)
                        }
                    }
                }
                _ => return Err(unsupported("AnyPointer")),
            },
        })
    }

    /// capnp's `Owned` type for it, as capnpc's code names it.
    pub(crate) fn capnp_owned(&self) -> capnp::Result<String> {
        Ok(match self {
            Ty::Unbound => "::capnp::any_pointer::Owned".into(),
            Ty::Map(_) => return Err(unsupported("a map as a generic argument")),
            Ty::Boxed(inner) => inner.capnp_owned()?,
            Ty::Text => "::capnp::text::Owned".into(),
            Ty::Data => "::capnp::data::Owned".into(),
            Ty::Struct(n) => format!("{}::Owned", n.capnp),
            Ty::Generic(n, args) => {
                let args: Vec<String> = args
                    .iter()
                    .map(Ty::capnp_owned)
                    .collect::<capnp::Result<_>>()?;
                format!("{}::Owned<{}>", n.capnp, args.join(", "))
            }
            Ty::Interface(n) | Ty::Closure(n) => format!("{}::Owned", n.capnp),
            Ty::List(inner) => match &**inner {
                Ty::Prim(p) => format!("::capnp::primitive_list::Owned<{p}>"),
                Ty::Void => "::capnp::primitive_list::Owned<()>".into(),
                Ty::Enum(n) => format!("::capnp::enum_list::Owned<{}>", n.capnp),
                Ty::Text => "::capnp::text_list::Owned".into(),
                Ty::Data => "::capnp::data_list::Owned".into(),
                Ty::Struct(_) | Ty::Generic(..) => {
                    format!("::capnp::struct_list::Owned<{}>", inner.capnp_owned()?)
                }
                Ty::List(_) => format!("::capnp::list_list::Owned<{}>", inner.capnp_owned()?),
                Ty::Interface(n) | Ty::Closure(n) => {
                    format!("::capnp::capability_list::Owned<{}::Client>", n.capnp)
                }
                Ty::Param(p) => return Err(unsupported(&format!("a list of the parameter {p}"))),
                Ty::Unbound => return Err(unsupported("a list of an unbound parameter")),
                Ty::Carried(_, wire) => Ty::List(wire.clone()).capnp_owned()?,
                Ty::Map(_) => return Err(unsupported("a list of maps")),
                Ty::Boxed(inner) => Ty::List(inner.clone()).capnp_owned()?,
            },
            Ty::Param(p) => p.clone(),
            Ty::Carried(_, wire) => wire.capnp_owned()?,
            Ty::Void | Ty::Prim(_) | Ty::Enum(_) => {
                return Err(unsupported("a generic argument that is not a pointer"));
            }
        })
    }

    /// Whether writing or reading it needs the connection (to serve or
    /// adopt a capability).
    pub(crate) fn needs_ctx(&self) -> bool {
        match self {
            // A struct's conversion takes the connection, for the
            // capabilities it may hold.
            Ty::Interface(_) | Ty::Closure(_) | Ty::Struct(_) | Ty::Generic(..) | Ty::Param(_) => {
                true
            }
            Ty::List(inner) | Ty::Carried(_, inner) | Ty::Boxed(inner) => inner.needs_ctx(),
            Ty::Map(entry) => entry.0.ty.needs_ctx() || entry.1.ty.needs_ctx(),
            _ => false,
        }
    }

    /// Whether it, or a type inside it (a list's element, a map's key or
    /// value, a generic's argument), is one `is` says yes to. A struct's
    /// own fields are not looked into.
    pub(crate) fn holds(&self, is: &dyn Fn(&Ty) -> bool) -> bool {
        if is(self) {
            return true;
        }
        match self {
            Ty::List(inner) | Ty::Carried(_, inner) | Ty::Boxed(inner) => inner.holds(is),
            Ty::Generic(_, args) => args.iter().any(|a| a.holds(is)),
            Ty::Map(entry) => entry.0.ty.holds(is) || entry.1.ty.holds(is),
            _ => false,
        }
    }

    /// Whether it is a capability, or a list of them.
    pub(crate) fn is_capability(&self) -> bool {
        match self {
            Ty::Interface(_) | Ty::Closure(_) => true,
            Ty::List(inner) => inner.is_capability(),
            _ => false,
        }
    }

    /// The owned Rust type: what results and struct fields hold.
    pub(crate) fn owned(&self) -> String {
        match self {
            Ty::Boxed(inner) => format!("Option<Box<{}>>", inner.owned()),
            Ty::Map(entry) => format!(
                "::std::collections::BTreeMap<{}, {}>",
                entry.0.ty.owned(),
                entry.1.ty.owned()
            ),
            Ty::Void | Ty::Unbound => "()".into(),
            Ty::Prim(p) => (*p).into(),
            Ty::Text => "String".into(),
            Ty::Data => "Vec<u8>".into(),
            Ty::Enum(n) => n.capnp.clone(),
            Ty::Struct(n) => format!("{}::{}", n.proxy_mod, n.rust),
            Ty::Generic(n, args) => {
                // Only the parameters the struct's fields use.
                let args: Vec<String> = args
                    .iter()
                    .zip(&n.used_params)
                    .filter(|(_, used)| **used)
                    .map(|(a, _)| a.owned())
                    .collect();
                if args.is_empty() {
                    format!("{}::{}", n.proxy_mod, n.rust)
                } else {
                    format!("{}::{}<{}>", n.proxy_mod, n.rust, args.join(", "))
                }
            }
            Ty::Param(p) => p.clone(),
            Ty::Carried(rust, _) => rust.clone(),
            Ty::List(inner) => format!("Vec<{}>", inner.owned()),
            Ty::Interface(n) => format!("::std::sync::Arc<dyn {}::{}>", n.proxy_mod, n.rust),
            Ty::Closure(n) => format!("{}::{}", n.proxy_mod, n.rust),
        }
    }

    /// The parameter type: borrowed where the owned type has a heap part.
    pub(crate) fn param(&self) -> String {
        match self {
            Ty::Text => "&str".into(),
            Ty::Data => "&[u8]".into(),
            Ty::List(inner) => format!("&[{}]", inner.owned()),
            Ty::Struct(_) | Ty::Generic(..) | Ty::Param(_) | Ty::Carried(..) | Ty::Map(_) => {
                format!("&{}", self.owned())
            }
            other => other.owned(),
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
            Ty::Boxed(_) => expr.to_string(),
            Ty::Void | Ty::Unbound | Ty::Prim(_) | Ty::Enum(_) => match expr.strip_prefix('&') {
                Some(place) => place.to_string(),
                None => format!("*{expr}"),
            },
            Ty::Text => format!("{}.as_str()", expr.strip_prefix('&').unwrap_or(expr)),
            Ty::Data | Ty::List(_) => {
                format!("{}.as_slice()", expr.strip_prefix('&').unwrap_or(expr))
            }
            Ty::Struct(_)
            | Ty::Generic(..)
            | Ty::Param(_)
            | Ty::Carried(..)
            | Ty::Map(_)
            | Ty::Interface(_)
            | Ty::Closure(_) => expr.to_string(),
        }
    }

    /// From an owned variable to the parameter an implementation takes.
    pub(crate) fn param_from_owned(&self, var: &str) -> String {
        match self {
            Ty::Text
            | Ty::Data
            | Ty::List(_)
            | Ty::Struct(_)
            | Ty::Generic(..)
            | Ty::Param(_)
            | Ty::Carried(..)
            | Ty::Map(_) => {
                format!("&{var}")
            }
            _ => var.to_string(),
        }
    }

    /// From an owned `Option` variable to an `Option` parameter.
    pub(crate) fn option_param_from_owned(&self, var: &str) -> String {
        match self {
            Ty::Text | Ty::Data | Ty::List(_) => format!("{var}.as_deref()"),
            Ty::Struct(_) | Ty::Generic(..) | Ty::Param(_) | Ty::Carried(..) | Ty::Map(_) => {
                format!("{var}.as_ref()")
            }
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

    /// Statements that write one map entry (`key`, `value`, references)
    /// into the entry struct `builder`.
    fn set_entry(&self, entry: &(Slot, Slot), builder: &str, depth: usize) -> String {
        let (k, v) = entry;
        let e = format!("entry{depth}");
        format!(
            "let mut {e} = {builder};\n{}{}",
            self.set_field(
                &k.ty,
                &e,
                &k.accessor,
                &k.ty.input_from_ref("key"),
                depth,
                k.generic
            ),
            self.set_field(
                &v.ty,
                &e,
                &v.accessor,
                &v.ty.input_from_ref("value"),
                depth,
                v.generic
            ),
        )
    }

    /// From `input` (a `&T`, `T: Carry`) to what the setters of `wire` take.
    fn write_carried(&self, wire: &Ty, input: &str, generic: bool) -> String {
        let converted = format!("{}::Carry::to_wire({input})", self.rt);
        match wire {
            Ty::Void | Ty::Prim(_) | Ty::Enum(_) => format!("*{converted}"),
            // capnpc's Data setters take `&[u8]`, which a `&Cow` becomes by
            // itself; its other setters are generic, and need the `&*`.
            Ty::Data if !generic => format!("&{converted}"),
            _ => format!("&*{converted}"),
        }
    }

    /// A read of field `accessor` of `r` that borrows from the message
    /// where the wire type allows (`&[u8]`, `&str`), to convert from.
    /// (`owned` is the owned read, for the other wire types.)
    fn borrowed_get(&self, wire: &Ty, read: &str, label: &str, owned: &str) -> String {
        let p = self.private();
        match wire {
            Ty::Data => format!("{read}?"),
            Ty::Text => format!("{read}?.to_str().map_err(|e| {p}::bad_value({label:?}, e))?"),
            _ => format!("&{owned}"),
        }
    }

    /// From `value` (a reference to the wire value) to the carried type
    /// `rust`.
    fn read_carried(&self, rust: &str, value: &str, label: &str) -> String {
        format!(
            "<{rust} as {}::Carry>::from_wire({value}).map_err(|e| {}::bad_value({label:?}, e))?",
            self.rt,
            self.private()
        )
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
        self.set_field(ty, b, accessor, input, depth, false)
    }

    /// [`set`](Self::set), for a field whose declared type is a parameter
    /// of its generic struct (`generic`: capnpc's setters for those return a
    /// `Result`, and lists are made with `initn_`) or not.
    pub(crate) fn set_field(
        &self,
        ty: &Ty,
        b: &str,
        accessor: &str,
        input: &str,
        depth: usize,
        generic: bool,
    ) -> String {
        let p = self.private();
        let (init_list, fallible) = if generic {
            ("initn", "?")
        } else {
            ("init", "")
        };
        match ty {
            Ty::Boxed(inner) => format!(
                "if let Some(value) = {input} {{\n{}}}\n",
                self.set_field(inner, b, accessor, "&**value", depth, generic)
            ),
            Ty::Carried(_, wire) => {
                let input = self.write_carried(wire, input, generic);
                self.set_field(wire, b, accessor, &input, depth, generic)
            }
            Ty::Map(entry) => {
                let list = format!("list{depth}");
                format!(
                    "{{\n let items = {input};\n let mut {list} = {b}.reborrow().{init_list}_{accessor}({p}::list_len(items.len())?);\n \
                     for (i, (key, value)) in items.iter().enumerate() {{\n{}}}\n}}\n",
                    self.set_entry(
                        entry,
                        &format!("{list}.reborrow().get(i as u32)"),
                        depth + 1
                    )
                )
            }
            Ty::Void | Ty::Unbound => String::new(),
            Ty::Prim(_) | Ty::Enum(_) | Ty::Text | Ty::Data => {
                format!("{b}.set_{accessor}({input}){fallible};\n")
            }
            Ty::Struct(_) | Ty::Generic(..) | Ty::Param(_) => {
                format!("{p}::Wire::write({input}, {b}.reborrow().init_{accessor}(), &mp_ctx)?;\n")
            }
            Ty::List(inner) => {
                let (list, i, item) = (
                    format!("list{depth}"),
                    format!("i{depth}"),
                    format!("item{depth}"),
                );
                format!(
                    "{{\n let items = {input};\n let mut {list} = {b}.reborrow().{init_list}_{accessor}({p}::list_len(items.len())?);\n \
                     for ({i}, {item}) in items.iter().enumerate() {{\n let {i} = {i} as u32;\n {}}}\n}}\n",
                    self.set_elem(inner, &list, &i, &inner.input_from_ref(&item), depth + 1)
                )
            }
            Ty::Interface(n) => format!(
                "{b}.set_{accessor}(<dyn {}::{} as {}::Interface>::to_capnp({input}, &mp_ctx)){fallible};\n",
                n.proxy_mod, n.rust, self.rt
            ),
            Ty::Closure(n) => format!(
                "{b}.set_{accessor}({}::__{}_to_capnp({input}, &mp_ctx)){fallible};\n",
                n.proxy_mod,
                snake(&n.rust)
            ),
        }
    }

    fn set_elem(&self, ty: &Ty, list: &str, i: &str, input: &str, depth: usize) -> String {
        let p = self.private();
        match ty {
            Ty::Boxed(inner) => self.set_elem(inner, list, i, input, depth),
            Ty::Carried(_, wire) => {
                self.set_elem(wire, list, i, &self.write_carried(wire, input, true), depth)
            }
            Ty::Map(_) => "compile_error!(\"a list of maps is not supported\");\n".into(),
            Ty::Void | Ty::Unbound => String::new(),
            Ty::Prim(_) | Ty::Enum(_) | Ty::Text | Ty::Data => {
                format!("{list}.set({i}, {input});\n")
            }
            Ty::Struct(_) | Ty::Generic(..) | Ty::Param(_) => {
                format!("{p}::Wire::write({input}, {list}.reborrow().get({i}), &mp_ctx)?;\n")
            }
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
                "{list}.set({i}, {p}::capnp::capability::FromClientHook::into_client_hook(<dyn {}::{} as {}::Interface>::to_capnp({input}, &mp_ctx)));\n",
                n.proxy_mod, n.rust, self.rt
            ),
            Ty::Closure(n) => format!(
                "{list}.set({i}, {p}::capnp::capability::FromClientHook::into_client_hook({}::__{}_to_capnp({input}, &mp_ctx)));\n",
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
        match ty {
            Ty::Boxed(inner) => format!(
                "if {r}.has_{accessor}() {{ Some(Box::new({})) }} else {{ None }}",
                self.get(inner, r, accessor, label, depth)
            ),
            Ty::Map(entry) => {
                let list = format!("list{depth}");
                format!(
                    "{{\n let {list} = {r}.get_{accessor}()?;\n let mut map = ::std::collections::BTreeMap::new();\n \
                     for i in 0..{list}.len() {{\n let entry = {list}.get(i);\n map.insert({}, {});\n }}\n map\n }}",
                    self.get(
                        &entry.0.ty,
                        "entry",
                        &entry.0.accessor,
                        &format!("{label}[].{}", entry.0.accessor),
                        depth + 1
                    ),
                    self.get(
                        &entry.1.ty,
                        "entry",
                        &entry.1.accessor,
                        &format!("{label}[].{}", entry.1.accessor),
                        depth + 1
                    ),
                )
            }
            _ => self.get_from(ty, &format!("{r}.get_{accessor}()"), label, depth),
        }
    }

    /// An expression reading `source` (what capnpc's getter of a field
    /// returns: the value, or a `Result` of a reader) into its owned Rust
    /// type.
    pub(crate) fn get_from(&self, ty: &Ty, source: &str, label: &str, depth: usize) -> String {
        let p = self.private();
        match ty {
            Ty::Boxed(inner) => format!(
                "Some(Box::new({}))",
                self.get_from(inner, source, label, depth)
            ),
            Ty::Carried(rust, wire) => {
                let owned = self.get_from(wire, source, label, depth);
                self.read_carried(rust, &self.borrowed_get(wire, source, label, &owned), label)
            }
            Ty::Map(_) => "compile_error!(\"a map here is not supported\")".into(),
            Ty::Void | Ty::Unbound => "()".into(),
            Ty::Prim(_) => source.to_string(),
            Ty::Enum(_) => format!("{source}.map_err(|e| {p}::bad_value({label:?}, e))?"),
            Ty::Text => {
                format!("{source}?.to_string().map_err(|e| {p}::bad_value({label:?}, e))?")
            }
            Ty::Data => format!("{source}?.to_vec()"),
            Ty::Struct(_) | Ty::Generic(..) | Ty::Param(_) => {
                format!("<{} as {p}::Wire>::read({source}?, &mp_ctx)?", ty.owned())
            }
            Ty::List(inner) => {
                let (list, i) = (format!("list{depth}"), format!("i{depth}"));
                format!(
                    "{{\n let {list} = {source}?;\n let mut items = Vec::with_capacity({list}.len() as usize);\n \
                     for {i} in 0..{list}.len() {{\n items.push({});\n }}\n items\n }}",
                    self.get_elem(inner, &list, &i, &format!("{label}[]"), depth + 1)
                )
            }
            Ty::Interface(n) => format!(
                "<dyn {}::{} as {}::Interface>::from_capnp({source}?, &mp_ctx)?",
                n.proxy_mod, n.rust, self.rt
            ),
            Ty::Closure(n) => format!(
                "{}::__{}_from_capnp({source}?, &mp_ctx)?",
                n.proxy_mod,
                snake(&n.rust)
            ),
        }
    }

    /// An expression reading element `i` of list reader `list` into its
    /// owned Rust type: what [`get_from`](Self::get_from) reads, except
    /// that a struct list's `get` returns the reader itself, not a
    /// `Result` of it.
    fn get_elem(&self, ty: &Ty, list: &str, i: &str, label: &str, depth: usize) -> String {
        let p = self.private();
        match ty {
            Ty::Boxed(inner) => format!(
                "Some(Box::new({}))",
                self.get_elem(inner, list, i, label, depth)
            ),
            Ty::Carried(rust, wire) => {
                let read = format!("{list}.get({i})");
                let owned = self.get_elem(wire, list, i, label, depth);
                self.read_carried(rust, &self.borrowed_get(wire, &read, label, &owned), label)
            }
            Ty::Struct(_) | Ty::Generic(..) | Ty::Param(_) => {
                format!(
                    "<{} as {p}::Wire>::read({list}.get({i}), &mp_ctx)?",
                    ty.owned()
                )
            }
            _ => self.get_from(ty, &format!("{list}.get({i})"), label, depth),
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
            None => self.set_field(&slot.ty, b, &slot.accessor, input, 0, slot.generic),
            Some(has) => format!(
                "if let Some(value) = {input} {{\n {b}.set_{has}({}::present());\n {}}}\n",
                self.private(),
                self.set_field(
                    &slot.ty,
                    b,
                    &slot.accessor,
                    &option_input("value"),
                    0,
                    slot.generic
                )
            ),
        }
    }

    /// Reads a slot into its owned Rust type (an `Option` for a `hasX`).
    pub(crate) fn get_slot(&self, slot: &Slot, r: &str, label: &str) -> String {
        let value = self.get(&slot.ty, r, &slot.accessor, label, 0);
        match &slot.has {
            None => value,
            Some(has) => format!(
                "if {}::is_present({r}.get_{has}()) {{ Some({value}) }} else {{ None }}",
                self.private()
            ),
        }
    }
}

/// The owned type of a slot.
pub(crate) fn slot_owned(slot: &Slot) -> String {
    match slot.has {
        None => slot.ty.owned(),
        Some(_) => format!("Option<{}>", slot.ty.owned()),
    }
}

/// The parameter type of a slot.
pub(crate) fn slot_param(slot: &Slot) -> String {
    match slot.has {
        None => slot.ty.param(),
        Some(_) => format!("Option<{}>", slot.ty.param()),
    }
}
