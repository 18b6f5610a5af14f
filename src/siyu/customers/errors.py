from siyu.kit.errors import Conflict, NotFound


class CustomerNotFound(NotFound):
    code = "customer_not_found"


class LinkNotFound(NotFound):
    code = "link_not_found"


class LinkAlreadyDecided(Conflict):
    code = "link_already_decided"
