"""What the two lessons on MX and bounces can show, end to end, in plain Python.

Run it:  .venv/bin/python docs/demo_mx_bounces.py
(tests/test_mx.py runs it too, so it keeps working.)
"""

from labsmtp import LabNet, find_route, plots, read_dsn

# --- Lesson: how mail finds the server -----------------------------------------
net = LabNet(seed=1).start()  # six real lab servers on 127.0.0.11, .12, ...
print(net.table())  # DNS gives the address; the lab gives the port
for domain in ["shop.example", "twins.example", "plain.example", "nomail.example"]:
    print(find_route(domain, seed=1))  # preference order, implicit MX, null MX

net.server("mx1.shop.example").faults.add("connect:421")  # the best MX says "try later"
d = net.send("ada@home.example", "bob@shop.example")
print(d)  # mx1: 421 -> next MX; mx2: 250
for helo in ["mta.home.example", "i.am.lying.example", "[127.0.0.20]"]:
    path = net.mta(helo=helo, seed=3).send("ada@home.example", "bob@shop.example").hosts_tried
    print(f"EHLO {helo:<20} -> {path}")  # the same route every time
net.server("mx1.shop.example").faults.clear()

# --- Lesson: bounces -----------------------------------------------------------
d = net.send("ada@home.example", ["bob@shop.example", "nobody@shop.example"])
bounce = net.mailbox("home.example")[-1]  # the sending MTA's DSN, MAIL FROM:<>
print(bounce.mail_from == "", bounce.rcpt_tos, net.spf(bounce).result)
print(read_dsn(bounce))  # Reporting-MTA, Final-Recipient, Action, Status, ...

spammer = net.mta("spam.bot.example", bounces=False)  # forges Carol's address
spammer.send("carol@innocent.example", ["nobody@shop.example", "nobody@acceptall.example"])
print(len(net.mailbox("innocent.example")))  # 0: shop.example refused at RCPT
print(net.deliver_local("acceptall.example")[0])  # acceptall said 250, now it bounces
print(net.mailbox("innocent.example")[-1])  # backscatter in an innocent mailbox
print(net.send("", "nobody@shop.example").notes[-1])  # a bounce is never bounced

fig = plots.mx_attempts(d)  # each try by MX host along simulated time
net.stop()
