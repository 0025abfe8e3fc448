pub fn placeholder_() {}
