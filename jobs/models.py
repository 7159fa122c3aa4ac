# Events, Jobs and the Actions that write fields back to Salesforce live here.
