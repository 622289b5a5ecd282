//! A Rust `FooInterface`, shaped as libmultiprocess's test implementation:
//! what the `foo-child` process serves, and what the tests use in process.

use std::sync::{Arc, Mutex};

use multiprocess::Result;

use crate::foo::{
    ExtendedCallback, FooCallback, FooCustom, FooEmpty, FooFn, FooInterface, FooMessage,
    FooMutable, FooStruct,
};

/// libmultiprocess's `FooImplementation`, in Rust.
#[derive(Default)]
pub struct FooImpl {
    saved_callback: Mutex<Option<Arc<dyn FooCallback>>>,
    saved_fn: Mutex<Option<FooFn>>,
}

fn saved<T: Clone>(slot: &Mutex<Option<T>>, what: &str) -> Result<T> {
    slot.lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .ok_or_else(|| multiprocess::Error::failed(format!("no {what} saved")))
}

impl FooInterface for FooImpl {
    fn add(&self, a: i32, b: i32) -> Result<i32> {
        Ok(a.wrapping_add(b))
    }
    fn map_size(&self, map: &std::collections::BTreeMap<String, String>) -> Result<i32> {
        Ok(i32::try_from(map.len()).unwrap_or(i32::MAX))
    }
    fn pass(&self, arg: &FooStruct) -> Result<FooStruct> {
        Ok(arg.clone())
    }
    fn raise(&self, arg: &FooStruct) -> Result<std::result::Result<(), FooStruct>> {
        Ok(Err(arg.clone()))
    }
    fn callback(&self, callback: Arc<dyn FooCallback>, arg: i32) -> Result<i32> {
        callback.call(arg)
    }
    fn callback_unique(&self, callback: Arc<dyn FooCallback>, arg: i32) -> Result<i32> {
        callback.call(arg)
    }
    fn callback_shared(&self, callback: Arc<dyn FooCallback>, arg: i32) -> Result<i32> {
        callback.call(arg)
    }
    fn save_callback(&self, callback: Arc<dyn FooCallback>) -> Result<()> {
        let old = self
            .saved_callback
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(callback);
        // The replaced callback is released here, on the serving thread.
        drop(old);
        Ok(())
    }
    fn callback_saved(&self, arg: i32) -> Result<i32> {
        saved(&self.saved_callback, "callback")?.call(arg)
    }
    fn callback_extended(&self, callback: Arc<dyn ExtendedCallback>, arg: i32) -> Result<i32> {
        callback.call_extended(arg)
    }
    fn pass_custom(&self, arg: &FooCustom) -> Result<FooCustom> {
        Ok(arg.clone())
    }
    fn pass_empty(&self, arg: &FooEmpty) -> Result<FooEmpty> {
        Ok(arg.clone())
    }
    fn pass_message(&self, arg: &FooMessage) -> Result<FooMessage> {
        Ok(FooMessage {
            message: format!("{} call", arg.message),
        })
    }
    fn pass_mutable(&self, arg: &FooMutable) -> Result<FooMutable> {
        Ok(FooMutable {
            message: format!("{} call", arg.message),
        })
    }
    fn pass_enum(&self, arg: i32) -> Result<i32> {
        Ok(arg)
    }
    fn pass_fn(&self, fn_: FooFn) -> Result<i32> {
        let result = fn_()?;
        *self.saved_fn.lock().unwrap_or_else(|p| p.into_inner()) = Some(fn_);
        Ok(result)
    }
    fn call_fn(&self) -> Result<()> {
        saved(&self.saved_fn, "fn")?().map(drop)
    }
    fn call_fn_async(&self) -> Result<()> {
        saved(&self.saved_fn, "fn")?().map(drop)
    }
    fn add_out(&self, a: i32, b: i32) -> Result<i32> {
        Ok(a.wrapping_add(b))
    }
    fn add_in_out(&self, x: i32, sum: i32) -> Result<i32> {
        Ok(sum.wrapping_add(x))
    }
    fn call_int_fn_async(&self, arg: i32) -> Result<i32> {
        Ok(saved(&self.saved_fn, "fn")?()?.wrapping_add(arg))
    }
    fn pass_data_pointers(&self, arg: &[Vec<u8>]) -> Result<Vec<Vec<u8>>> {
        Ok(arg.to_vec())
    }
    fn pass_double(&self, arg: f64) -> Result<f64> {
        Ok(arg)
    }
}

/// The bootstrap of `foo-child`.
pub struct FooInitImpl;

impl crate::foo_init::FooInit for FooInitImpl {
    fn make_foo(&self) -> Result<Arc<dyn FooInterface>> {
        Ok(Arc::new(FooImpl::default()))
    }
}
