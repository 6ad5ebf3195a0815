"""The demo website: a shop that logs people in and has them sign, through both doors
(the bridge on the person's computer and the order relay), built on the rp kit the way a
bank's or a shop's server would use it. It is not part of the kit: a server installs
``rp`` and serves ``rp/static/eid-agent.js`` to its pages; this package shows how."""
