"""Tags (标签): groups, manual tags put on by people, auto tags kept true by a rule, and their history."""
