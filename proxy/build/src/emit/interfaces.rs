//! Interfaces and closures: the trait, the client, the server adapter and
//! the `Interface` impl of each.

use super::*;

impl<'a> FileGen<'_, 'a> {
    /// The name of the generated client of interface `name`: `WalletClient`,
    /// or `WalletRemote` where the schema has an interface `WalletClient`
    /// of its own (Bitcoin Core's `Chain` and `ChainClient`).
    pub(super) fn client_name(&self, name: &NodeName) -> String {
        let wanted = format!("{}Client", name.rust);
        let taken = self
            .schema
            .names
            .values()
            .any(|n| n.proxy_mod == name.proxy_mod && n.rust == wanted);
        if taken {
            format!("{}Remote", name.rust)
        } else {
            wanted
        }
    }

    /// The interfaces `id` extends, directly.
    pub(super) fn superclasses(&self, id: u64) -> capnp::Result<Vec<u64>> {
        let node::Interface(iface) = self.schema.node(id)?.which()? else {
            return Ok(Vec::new());
        };
        Ok(iface
            .get_superclasses()?
            .iter()
            .map(|s| s.get_id())
            .collect())
    }

    /// `id` and every interface it extends, transitively, `id` first.
    pub(super) fn lineage(&self, id: u64) -> capnp::Result<Vec<u64>> {
        let mut all = vec![id];
        let mut i = 0;
        while i < all.len() {
            for sup in self.superclasses(all[i])? {
                if !all.contains(&sup) {
                    all.push(sup);
                }
            }
            i += 1;
        }
        Ok(all)
    }

    pub(super) fn interface(&mut self, id: u64, node: node::Reader<'a>) -> capnp::Result<()> {
        let name = self.schema.name(id)?.clone();
        let rt = self.rt;
        let p = self.p();
        let methods = self.methods(id)?;
        self.output_structs(&methods);
        let supers = self.superclasses(id)?;
        let wrap = Schema::text_annotation(node.get_annotations()?, self.schema.proxy.wrap)?;
        let has_destroy = methods.iter().any(|m| m.kind == Kind::Destroy);
        let client = self.client_name(&name);
        let mut o = String::new();
        // The trait.
        let _ = writeln!(
            o,
            "/// The capnp interface `{}`{}.",
            name.display,
            wrap.as_ref()
                .map(|w| format!(" (C++: `{w}`)"))
                .unwrap_or_default()
        );
        if let Some(doc) = self.schema.doc(id) {
            let _ = write!(o, "///\n{}", doc_lines(doc, ""));
        }
        let _ = writeln!(
            o,
            "///\n/// Implement it to serve the interface; a client of another process's object\n/// ([`{}`]) implements it too, so code that takes a `dyn {}` cannot\n/// tell a local object from a remote one.",
            client, name.rust
        );
        if has_destroy {
            let _ = writeln!(
                o,
                "///\n/// Dropping the last handle to a remote object destroys it in its process, on\n/// the worker thread dedicated to the dropping thread (`destroy`)."
            );
        }
        let mut bounds = vec!["::std::any::Any".to_string(), "Send".into(), "Sync".into()];
        for sup in &supers {
            let n = self.schema.name(*sup)?;
            bounds.insert(0, format!("{}::{}", n.proxy_mod, n.rust));
        }
        let _ = writeln!(o, "pub trait {}: {} {{", name.rust, bounds.join(" + "));
        for m in methods.iter().filter(|m| m.kind == Kind::Regular) {
            let _ = writeln!(o, "    /// `{}`.\n    ///", m.trace);
            if let Some(doc) = &m.doc {
                let _ = writeln!(o, "{}    ///", doc_lines(doc, "    "));
            }
            let _ = writeln!(o, "    /// {}", Self::thread_doc(m));
            let _ = writeln!(o, "    {};", self.signature(m));
        }
        let _ = writeln!(o, "}}\n");

        let _ = writeln!(
            o,
            "impl ::std::fmt::Debug for dyn {n} {{\n    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{\n        f.write_str(\"dyn {n}\")\n    }}\n}}\n",
            n = name.rust
        );

        // The client.
        let object_ty = if has_destroy {
            format!("{p}::DestroyOnDrop<{}::Client>", name.capnp)
        } else {
            format!("{p}::RemoteObject<{}::Client>", name.capnp)
        };
        let _ = writeln!(
            o,
            "/// Another process's `{}`: each method is a blocking call that runs on the\n/// worker thread the peer dedicates to the calling thread.\npub struct {} {{\n    object: {object_ty},\n}}\n",
            name.display, client
        );
        let _ = writeln!(
            o,
            "impl ::std::fmt::Debug for {} {{\n    fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {{\n        f.debug_struct(\"{}\").field(\"object\", &self.object).finish()\n    }}\n}}\n",
            client, client
        );
        let _ = writeln!(
            o,
            "impl {} {{\n    /// The peer's capability this client calls (for requests built by\n    /// hand).\n    pub fn remote(&self) -> &{p}::RemoteObject<{}::Client> {{\n        &self.object\n    }}\n\n    /// Wraps a peer's `{}`.\n    pub fn new(object: {p}::RemoteObject<{}::Client>) -> Self {{",
            client, name.capnp, name.display, name.capnp
        );
        if let Some(m) = methods.iter().find(|m| m.kind == Kind::Destroy) {
            let _ = writeln!(
                o,
                "        Self {{ object: {p}::DestroyOnDrop::new(object, {:?}, |client, cx| {{\n let mut request = client.destroy_request();\n cx.set_context(request.get().init_context());\n let response = request.send().promise;\n Box::pin(async move {{ response.await?; Ok(()) }})\n }}) }}",
                m.trace
            );
        } else {
            let _ = writeln!(o, "        Self {{ object }}");
        }
        let _ = writeln!(o, "    }}\n}}\n");
        for (i, iface) in self.lineage(id)?.into_iter().enumerate() {
            let iname = self.schema.name(iface)?.clone();
            let imethods = if i == 0 {
                self.methods(id)?
            } else {
                self.methods(iface)?
            };
            let _ = writeln!(
                o,
                "impl {}::{} for {} {{",
                iname.proxy_mod, iname.rust, client
            );
            for m in imethods.iter().filter(|m| m.kind == Kind::Regular) {
                let _ = writeln!(o, "    {} {{", self.signature(m));
                let cast = (i != 0).then_some(name.capnp.as_str());
                o.push_str(&self.client_call(m, "self.object", &iname.capnp, cast));
                let _ = writeln!(o, "    }}");
            }
            let _ = writeln!(o, "}}\n");
        }

        // The server adapter. Its connection is read by the methods with a
        // Context and by those that serve or adopt capabilities or structs.
        let mut uses_ctx = false;
        for iface in self.lineage(id)? {
            for m in self.methods(iface)? {
                uses_ctx |= m.kind != Kind::Regular
                    || m.has_context
                    || m.params
                        .iter()
                        .chain(&m.results)
                        .chain(&m.exception)
                        .any(|s| s.ty.needs_ctx());
            }
        }
        let allow = if uses_ctx {
            ""
        } else {
            "    // No method of this interface needs its connection.\n    #[allow(dead_code)]\n"
        };
        let _ = writeln!(
            o,
            "/// Serves a `dyn {}` to a peer: each request runs on the thread its `Context`\n/// names.\n#[doc(hidden)]\npub struct {}Server {{\n    object: {p}::ObjectSlot<dyn {}>,\n{allow}    ctx: {p}::ServeContext,\n}}\n",
            name.rust, name.rust, name.rust
        );
        for (i, iface) in self.lineage(id)?.into_iter().enumerate() {
            let iname = self.schema.name(iface)?.clone();
            let imethods = if i == 0 {
                self.methods(id)?
            } else {
                self.methods(iface)?
            };
            let _ = writeln!(o, "impl {}::Server for {}Server {{", iname.capnp, name.rust);
            for m in &imethods {
                let call = format!("mp_object.{}({})", m.rust, Self::call_args(m));
                let _ = write!(
                    o,
                    "{}",
                    self.server_method(m, &iname.capnp, &call, "self.object.take()")
                );
            }
            let _ = writeln!(o, "}}\n");
        }

        // The Interface impl, with the set that recognises our own objects.
        let set = format!("{}_SERVERS", snake(&name.rust).to_uppercase());
        let _ = writeln!(
            o,
            "::std::thread_local! {{\n    static {set}: ::std::cell::RefCell<(usize, {p}::capnp_rpc::CapabilityServerSet<{}Server, {}::Client>)> = ::std::cell::RefCell::default();\n}}\n",
            name.rust, name.capnp
        );
        let _ = writeln!(
            o,
            "impl {rt}::Interface for dyn {n} {{\n    type Capnp = {c}::Client;\n    const NAME: &'static str = {d:?};\n\n    \
             fn from_remote(object: {p}::RemoteObject<{c}::Client>) -> ::std::sync::Arc<Self> {{\n        ::std::sync::Arc::new({cl}::new(object))\n    }}\n\n    \
             fn to_capnp(object: &::std::sync::Arc<Self>, ctx: &{p}::ServeContext) -> {c}::Client {{\n        \
             let any: &dyn ::std::any::Any = &**object;\n        \
             let ours = any\n            .downcast_ref::<{cl}>()\n            .filter(|client| client.object.connection_id() == ctx.connection_id())\n            .and_then(|client| client.object.client_on_loop());\n        \
             if let Some(capability) = ours {{\n            return capability;\n        }}\n        \
             let server = {n}Server {{ object: {p}::ObjectSlot::from_arc(object.clone()), ctx: ctx.clone() }};\n        \
             {set}.with(|set| {{\n            let (added, set) = &mut *set.borrow_mut();\n            *added += 1;\n            if *added % 64 == 0 {{\n                set.gc();\n            }}\n            set.new_client(server)\n        }})\n    }}\n\n    \
             fn from_capnp(client: {c}::Client, ctx: &{p}::ServeContext) -> {p}::capnp::Result<::std::sync::Arc<Self>> {{\n        \
             let local = {set}.with(|set| set.borrow().1.get_local_server_of_resolved(&client));\n        \
             if let Some(object) = local.and_then(|server| server.object.get().ok()) {{\n            return Ok(object);\n        }}\n        \
             ctx.adopt(client).map(Self::from_remote).map_err(|e| e.to_capnp())\n    }}\n}}\n",
            n = name.rust,
            c = name.capnp,
            d = name.display,
            cl = client,
        );
        self.out.push_str(&o);
        Ok(())
    }

    pub(super) fn closure(&mut self, id: u64, node: node::Reader<'a>) -> capnp::Result<()> {
        let name = self.schema.name(id)?.clone();
        let p = self.p();
        let methods = self.methods(id)?;
        self.output_structs(&methods);
        let wrap = Schema::text_annotation(node.get_annotations()?, self.schema.proxy.wrap)?
            .unwrap_or_default();
        let Some(call) = methods.iter().find(|m| m.rust == "call") else {
            return Ok(());
        };
        let args: Vec<String> = call.params.iter().map(slot_param).collect();
        let ret = self.return_type(call);
        let fn_ty = format!("dyn Fn({}) -> {ret} + Send + Sync", args.join(", "));
        let lower = snake(&name.rust);
        let mut o = String::new();
        let _ = writeln!(
            o,
            "/// The closure interface `{}` (C++: `{wrap}`): any Rust closure of this shape.\n///\n/// Passed to another process, it runs there as a call back into this one: on the\n/// thread waiting for the call it was passed in, if that thread is still waiting,\n/// else on a worker this process dedicates to the calling thread.\npub type {} = ::std::sync::Arc<{fn_ty}>;\n",
            name.display, name.rust
        );
        let _ = writeln!(
            o,
            "#[doc(hidden)]\npub struct __{}Server {{\n    // A closure's type is as long as its signature.\n    #[allow(clippy::type_complexity)]\n    object: {p}::ObjectSlot<{fn_ty}>,\n    ctx: {p}::ServeContext,\n}}\n",
            name.rust
        );
        let _ = writeln!(
            o,
            "impl {}::Server for __{}Server {{",
            name.capnp, name.rust
        );
        for m in &methods {
            let args: Vec<String> = Self::call_args(m)
                .split(", ")
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect();
            let call_expr = format!("mp_object({})", args.join(", "));
            let _ = write!(
                o,
                "{}",
                self.server_method(m, &name.capnp, &call_expr, "self.object.take()")
            );
        }
        let _ = writeln!(o, "}}\n");
        let has_destroy = methods.iter().any(|m| m.kind == Kind::Destroy);
        // What the closures of the peer's capture: the type to look for when
        // one is passed back.
        let holder = if has_destroy {
            format!("{p}::DestroyOnDrop<{}::Client>", name.capnp)
        } else {
            format!("{p}::RemoteObject<{}::Client>", name.capnp)
        };
        let set = format!("{}_SERVERS", lower.to_uppercase());
        let _ = writeln!(
            o,
            "::std::thread_local! {{\n    static {set}: ::std::cell::RefCell<(usize, {p}::capnp_rpc::CapabilityServerSet<__{n}Server, {c}::Client>)> = ::std::cell::RefCell::default();\n}}\n",
            n = name.rust,
            c = name.capnp
        );
        let _ = writeln!(
            o,
            "#[doc(hidden)]\npub fn __{lower}_to_capnp(object: &{n}, ctx: &{p}::ServeContext) -> {c}::Client {{\n    \
             let address = ::std::sync::Arc::as_ptr(object) as *const () as usize;\n    \
             let theirs = {p}::peer_closure(address, ctx.connection_id()).and_then(|holder| {{\n        \
             holder.downcast_ref::<{holder}>().and_then(|remote| remote.client_on_loop())\n    }});\n    \
             if let Some(capability) = theirs {{\n        return capability;\n    }}\n    \
             let server = __{n}Server {{ object: {p}::ObjectSlot::from_arc(object.clone()), ctx: ctx.clone() }};\n    \
             {set}.with(|set| {{\n        let (added, set) = &mut *set.borrow_mut();\n        *added += 1;\n        if *added % 64 == 0 {{\n            set.gc();\n        }}\n        set.new_client(server)\n    }})\n}}\n",
            n = name.rust,
            c = name.capnp,
            holder = holder,
        );
        let remote_ty = "mp_remote";
        let _ = writeln!(
            o,
            "#[doc(hidden)]\npub fn __{lower}_from_capnp(client: {c}::Client, ctx: &{p}::ServeContext) -> {p}::capnp::Result<{n}> {{\n    \
             let local = {set}.with(|set| set.borrow().1.get_local_server_of_resolved(&client));\n    \
             if let Some(object) = local.and_then(|server| server.object.get().ok()) {{\n        return Ok(object);\n    }}\n    \
             let {remote_ty} = ctx.adopt(client).map_err(|e| e.to_capnp())?;",
            n = name.rust,
            c = name.capnp
        );
        if let Some(d) = methods.iter().find(|m| m.kind == Kind::Destroy) {
            let _ = writeln!(
                o,
                "    let mp_remote = {p}::DestroyOnDrop::new(mp_remote, {:?}, |client: &{c}::Client, cx: &{p}::CallContext<'_>| {{\n let mut request = client.destroy_request();\n cx.set_context(request.get().init_context());\n let response = request.send().promise;\n Box::pin(async move {{ response.await?; Ok(()) }})\n }});",
                d.trace,
                c = name.capnp
            );
        }
        let params: Vec<String> = call
            .params
            .iter()
            .map(|s| format!("{}: {}", s.name, slot_param(s)))
            .collect();
        let _ = writeln!(
            o,
            "    let mp_remote = ::std::sync::Arc::new(mp_remote);\n    \
             let mp_key = ::std::sync::Arc::new({p}::PeerClosureKey::default());\n    \
             let mp_closure_key = mp_key.clone();\n    \
             let mp_weak: ::std::sync::Weak<dyn ::std::any::Any + Send + Sync> = ::std::sync::Arc::downgrade(&mp_remote) as _;\n    \
             let mp_closure: {n} = ::std::sync::Arc::new(move |{}| {{\n let _ = &mp_closure_key;",
            params.join(", "),
            n = name.rust
        );
        o.push_str(&self.client_call(call, "mp_remote", &name.capnp, None));
        let _ = writeln!(
            o,
            "    }});\n    mp_key.register(::std::sync::Arc::as_ptr(&mp_closure) as *const () as usize, ctx.connection_id(), mp_weak);\n    Ok(mp_closure)\n}}\n"
        );
        self.out.push_str(&o);
        Ok(())
    }
}
